// Enqueue-to-start latency of COUNT jobs enqueued one after another, each after the previous one
// started, measured in the database on both sides (the claim's timestamp minus the insert's), so
// client overhead counts for neither queue.
//   node latency.js mailsync|graphile URL COUNT
const { Pool } = require("pg");
const { run, Logger } = require("graphile-worker");

// Quiet: this process prints only its JSON result.
const quiet = new Logger(() => () => {});

const [mode, url, countText] = process.argv.slice(2);
const count = Number(countText);

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function mailsync(pool) {
  // The worker is a separate mailsync-worker process (LISTEN, poll fallback 1 s). A succeeded
  // job's row is deleted when it finishes, so run.sh installs a bench-only trigger that keeps its
  // claim latency in bench_latency first.
  for (let i = 0; i < count; i++) {
    const { rows } = await pool.query("INSERT INTO mailsync.jobs (kind) VALUES ('noop') RETURNING id");
    for (;;) {
      const r = await pool.query("SELECT 1 FROM mailsync.jobs WHERE id = $1", [rows[0].id]);
      if (!r.rows.length) break;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  const { rows } = await pool.query("SELECT ms FROM bench_latency");
  return rows.map((row) => Number(row.ms));
}

async function graphile(pool) {
  const latencies = [];
  let started = null;
  const runner = await run({
    noHandleSignals: true,
    logger: quiet,
    taskList: {
      noop: async (_payload, helpers) => {
        const r = await helpers.query(
          "SELECT extract(epoch FROM locked_at - created_at) * 1000 AS ms FROM graphile_worker._private_jobs WHERE id = $1",
          [helpers.job.id]);
        started(Number(r.rows[0].ms));
      },
    },
    preset: { worker: { connectionString: url, concurrentJobs: 1, maxPoolSize: 4, pollInterval: 1000 } },
  });
  for (let i = 0; i < count; i++) {
    const done = new Promise((resolve) => { started = resolve; });
    await pool.query("SELECT graphile_worker.add_job('noop', '{}')");
    latencies.push(await done);
  }
  await runner.stop();
  return latencies;
}

(async () => {
  const pool = new Pool({ connectionString: url, max: 2 });
  const latencies = mode === "mailsync" ? await mailsync(pool) : await graphile(pool);
  await pool.end();
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({ p50: percentile(latencies, 50), p99: percentile(latencies, 99) }));
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
