#pragma once

// The status page's script and stylesheet, served from the binary (nothing fetched from outside).

namespace mailsync::ui {

// Refreshes the panels in place every data-refresh seconds: fetches the same page and swaps its
// #panels for the new one (parsed by DOMParser, which runs no script; no innerHTML anywhere).
inline constexpr const char* kAppJs = R"js("use strict";
(() => {
  const seconds = Number(document.body.dataset.refresh) || 5;
  const stamp = document.getElementById("updated");
  async function refresh() {
    try {
      const response = await fetch(location.href, { cache: "no-store", credentials: "same-origin" });
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      const panels = next.getElementById("panels");
      if (panels) document.getElementById("panels").replaceWith(document.adoptNode(panels));
      const when = next.getElementById("updated");
      stamp.textContent = when ? when.textContent : "";
      stamp.classList.toggle("stale", !response.ok);
      if (!response.ok) stamp.textContent = "HTTP " + response.status + " " + stamp.textContent;
    } catch (error) {
      stamp.textContent = "not refreshed: " + error.message;
      stamp.classList.add("stale");
    }
    setTimeout(refresh, seconds * 1000);
  }
  setTimeout(refresh, seconds * 1000);
})();
)js";

inline constexpr const char* kStyleCss = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
header { display: flex; gap: 1em; align-items: baseline; padding: .6em 1em; background: #24292f; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
header a { color: #fff; text-decoration: none; }
header .hint { margin-left: auto; opacity: .7; }
main { padding: 0 1em 2em; }
section { margin-top: 1.2em; }
h2 { font-size: 1.05em; margin: 0 0 .4em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .3em .5em; border-bottom: 1px solid #e4e4e7; vertical-align: top; }
th { font-weight: 600; background: #f4f4f5; }
.badge { padding: .1em .5em; border-radius: .8em; font-size: .9em; }
.badge.ok { background: #dcfce7; } .badge.bad { background: #fee2e2; }
.badge.busy { background: #dbeafe; } .badge.idle { background: #f4f4f5; }
.error, .words { color: #991b1b; white-space: pre-wrap; word-break: break-word; }
.stale { color: #fca5a5; }
.hint { color: #52525b; }
progress { width: 10em; vertical-align: middle; }
.figures { white-space: nowrap; }
svg.chart { background: #fff; border: 1px solid #e4e4e7; }
.axis { display: flex; justify-content: space-between; width: 600px; margin: 0; color: #52525b; font-size: .85em; }
svg.chart rect.ok { fill: #16a34a; } svg.chart rect.bad { fill: #dc2626; }
)css";

}  // namespace mailsync::ui
