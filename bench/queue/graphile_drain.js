// One graphile-worker process draining the queue the way graphile-worker's own perfTest does:
// runOnce with `concurrentJobs` and, batched, a local queue and immediate batch completion.
//   node graphile_drain.js URL CONCURRENCY
const { runOnce, Logger } = require("graphile-worker");

const [url, concurrency] = process.argv.slice(2);
runOnce({
  noHandleSignals: true,
  logger: new Logger(() => () => {}),
  taskList: { noop: async () => {} },
  preset: {
    worker: {
      connectionString: url,
      concurrentJobs: Number(concurrency),
      maxPoolSize: Number(concurrency) + 1,
      localQueue: { size: 500 },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  },
}).catch((e) => {
  console.error(e);
  process.exit(1);
});
