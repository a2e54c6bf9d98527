// The admin page's stylesheet and its one small script, served from the same origin (the CSP allows
// nothing else). Kept as strings so that the build (tsc) carries them into dist/ with the code.
// The pages work without the script: it only adds the copy buttons.

export const ADMIN_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --fg: #1b1f24; --muted: #5b6470; --card: #fff; --line: #d5dae1;
  --accent: #1f5fbf; --accent-fg: #fff; --ok: #1d7a3a; --warn: #9a5b00; --bad: #b3261e;
  --focus: #ffbf47;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15181c; --fg: #e8eaed; --muted: #a3abb5; --card: #1e2227; --line: #3a414a;
    --accent: #7aa7f0; --accent-fg: #0b1020; --ok: #6fcf8a; --warn: #f0b35a; --bad: #ff8a80;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
}
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: .5rem; }
header.top {
  display: flex; flex-wrap: wrap; align-items: center; gap: .25rem 1rem;
  padding: .5rem 1rem; background: var(--card); border-bottom: 1px solid var(--line);
}
header.top .brand { font-weight: 700; margin-right: auto; text-decoration: none; color: var(--fg); }
header.top nav ul { display: flex; flex-wrap: wrap; gap: .25rem .75rem; list-style: none; margin: 0; padding: 0; }
header.top nav a { display: inline-block; padding: .4rem .2rem; }
header.top nav a[aria-current="page"] { font-weight: 700; color: var(--fg); }
header.top form { margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 0 0 .75rem; }
section.card, .card {
  background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 1rem; margin: 0 0 1rem;
}
.grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr)); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.flash { padding: .75rem 1rem; border-radius: 8px; margin: 0 0 1rem; border: 1px solid; }
.flash.ok { border-color: var(--ok); color: var(--ok); }
.flash.error { border-color: var(--bad); color: var(--bad); }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 999px; font-size: .85rem; border: 1px solid; white-space: nowrap; }
.badge.active { color: var(--ok); }
.badge.paused, .badge.expired { color: var(--warn); }
.badge.over-limit, .badge.down { color: var(--bad); }
.field { margin: 0 0 .75rem; }
.field label, .field .label { display: block; font-weight: 600; margin-bottom: .2rem; }
.field .hint { display: block; color: var(--muted); font-size: .875rem; }
input[type="text"], input[type="password"], input[type="number"], input[type="date"], select, textarea {
  width: 100%; max-width: 100%; font: inherit; padding: .5rem .6rem; min-height: 2.75rem;
  border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg);
}
textarea { min-height: 4.5rem; resize: vertical; font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
.check { display: flex; gap: .5rem; align-items: center; margin: 0 0 .75rem; }
.check input { width: 1.25rem; height: 1.25rem; }
button, .button {
  font: inherit; display: inline-block; min-height: 2.75rem; padding: .5rem 1rem; border-radius: 6px;
  border: 1px solid var(--accent); background: var(--accent); color: var(--accent-fg); cursor: pointer;
  text-decoration: none; text-align: center;
}
button.secondary, .button.secondary { background: transparent; color: var(--accent); }
button.danger, .button.danger { background: var(--bad); border-color: var(--bad); color: #fff; }
button.link { background: none; border: none; color: var(--accent); padding: .4rem .2rem; min-height: 0; text-decoration: underline; }
.row { display: flex; flex-wrap: wrap; gap: 0 .75rem; align-items: flex-start; }
.row > .field.end { flex: 0 0 auto; align-self: flex-end; }
.row > .field { flex: 1 1 12rem; }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; }
.actions form { margin: 0; }
ul.keys { list-style: none; margin: 0; padding: 0; }
ul.keys li { border-top: 1px solid var(--line); padding: .75rem 0; }
ul.keys li:first-child { border-top: none; }
ul.keys .head { display: flex; flex-wrap: wrap; gap: .25rem .75rem; align-items: baseline; }
ul.keys .name { font-weight: 600; overflow-wrap: anywhere; }
meter { width: 100%; height: 1rem; }
.usage { margin: .25rem 0; }
.copy { display: flex; gap: .5rem; align-items: stretch; }
.copy input, .copy textarea { flex: 1; min-width: 0; font-family: ui-monospace, monospace; font-size: .85rem; }
.qr { text-align: center; }
.qr svg { width: min(100%, 18rem); height: auto; background: #fff; border-radius: 4px; }
figure.chart { margin: 0; }
figure.chart svg { width: 100%; height: auto; max-height: 16rem; display: block; }
figure.chart .bar { fill: var(--accent); }
figure.chart .axis { stroke: var(--line); }
figure.chart .label { fill: var(--muted); font-size: 12px; }
figure.chart figcaption { color: var(--muted); font-size: .875rem; margin-top: .25rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
.card.login { max-width: 24rem; margin: 3rem auto; }
@media (max-width: 30rem) {
  main { padding: .75rem; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: .4rem; }
}
`;

export const ADMIN_JS = `'use strict';
// Copy buttons: each [data-copy] button copies the value of the field it names. Without this
// script the buttons stay hidden and the fields stay selectable.
(function () {
  function copy(field) {
    var text = field.value;
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    field.focus();
    field.select();
    return new Promise(function (resolve, reject) {
      try { document.execCommand('copy') ? resolve() : reject(new Error('copy refused')); }
      catch (e) { reject(e); }
    });
  }
  var buttons = document.querySelectorAll('button[data-copy]');
  for (var i = 0; i < buttons.length; i++) {
    (function (b) {
      var field = document.getElementById(b.getAttribute('data-copy'));
      if (!field) return;
      var label = b.textContent;
      b.hidden = false;
      b.addEventListener('click', function () {
        copy(field).then(
          function () { b.textContent = 'Copied'; },
          function () { field.focus(); field.select(); b.textContent = 'Press Ctrl+C'; }
        ).then(function () { setTimeout(function () { b.textContent = label; }, 2000); });
      });
    })(buttons[i]);
  }
})();
`;
