// The widget's look, inside its shadow root so the book's CSS and ours never meet. Light and dark
// follow the reader's system setting; colours keep at least 4.5:1 contrast on both.

export const URDU_FONTS =
  '"Noto Nastaliq Urdu", "Jameel Noori Nastaleeq", "Urdu Typesetting", "Noto Naskh Arabic", "Noto Sans Arabic", "Segoe UI", Tahoma, sans-serif';

export const CSS = `
:host { all: initial; }
* { box-sizing: border-box; }
.bt {
  --bg: #ffffff; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0b5cad; --accent-fg: #ffffff;
  --soft: #f3f5f8; --quote: #fff8e1; --error: #a40e26;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
}
@media (prefers-color-scheme: dark) {
  .bt { --bg: #161b22; --fg: #e6edf3; --muted: #9da7b3; --line: #3d444d; --accent: #79b8ff; --accent-fg: #0d1117;
        --soft: #21262d; --quote: #2d2a1e; --error: #ff8c8c; }
}
button { font: inherit; cursor: pointer; color: inherit; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; border: 0; border-radius: 24px;
  padding: 10px 18px; background: var(--accent); color: var(--accent-fg); font-weight: 600; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
.panel { position: fixed; right: 20px; bottom: 76px; z-index: 2147483001; width: min(420px, calc(100vw - 24px));
  height: min(640px, calc(100vh - 100px)); display: flex; flex-direction: column; background: var(--bg); color: var(--fg);
  border: 1px solid var(--line); border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.3); overflow: hidden; }
.panel[hidden], [hidden] { display: none !important; }
header { display: flex; align-items: center; gap: 4px; padding: 8px 10px; border-bottom: 1px solid var(--line); }
header h2 { font-size: 16px; margin: 0 auto 0 4px; }
.icon { border: 1px solid transparent; background: none; border-radius: 6px; padding: 4px 8px; color: var(--fg); }
.icon:hover { background: var(--soft); }
.pane { padding: 10px 12px; border-bottom: 1px solid var(--line); background: var(--soft); flex: 0 1 auto; max-height: 75%; overflow: auto; }
.pane h3 { font-size: 14px; margin: 0 0 6px; }
.pane ul { list-style: none; margin: 0; padding: 0; }
.pane li { display: flex; gap: 6px; align-items: center; padding: 2px 0; }
.pane li .open { flex: 1; text-align: left; border: 0; background: none; padding: 4px; color: var(--accent); text-decoration: underline; }
.pane label { display: block; font-size: 13px; margin: 6px 0 2px; color: var(--muted); }
.pane input, .pane select, .pane textarea { width: 100%; font: inherit; padding: 4px 6px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); color: var(--fg); }
.log { flex: 1; overflow: auto; padding: 10px 12px; }
.empty { color: var(--muted); }
.turn { margin-bottom: 16px; }
.question { background: var(--soft); border-radius: 8px; padding: 6px 10px; margin: 0 0 6px; white-space: pre-wrap; }
blockquote.selection { margin: 0 0 6px; padding: 6px 10px; border-left: 4px solid #c9a227; background: var(--quote);
  white-space: pre-wrap; max-height: 8em; overflow: auto; font-size: 14px; }
.sources { font-size: 13px; color: var(--muted); margin: 4px 0; }
.sources ol { margin: 2px 0; padding-left: 22px; }
.sources a, .answer a { color: var(--accent); }
.answer-body { overflow-wrap: anywhere; }
.answer-body pre { background: var(--soft); padding: 8px; border-radius: 6px; overflow: auto; direction: ltr; text-align: left; }
.answer-body code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; direction: ltr; unicode-bidi: isolate; }
.answer-body table { border-collapse: collapse; } .answer-body td, .answer-body th { border: 1px solid var(--line); padding: 2px 6px; }
[dir="rtl"] { text-align: right; }
[lang="ur"] { font-family: ${URDU_FONTS}; line-height: 2; }
.actions { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 4px; }
.actions button { border: 1px solid var(--line); background: var(--bg); border-radius: 6px; padding: 2px 8px; font-size: 13px; }
.actions button[aria-pressed="true"] { background: var(--accent); color: var(--accent-fg); }
.feedback-form { display: flex; gap: 4px; margin-top: 4px; }
.feedback-form input { flex: 1; font: inherit; font-size: 13px; padding: 2px 6px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
.translation { margin-top: 8px; padding-top: 6px; border-top: 1px dashed var(--line); }
.status { min-height: 1.5em; padding: 2px 12px; font-size: 13px; color: var(--muted); }
.status.error, .error-text { color: var(--error); }
form.composer { border-top: 1px solid var(--line); padding: 8px; display: flex; flex-direction: column; gap: 6px; }
.composer .pending { font-size: 13px; margin: 0; }
.composer .row { display: flex; gap: 6px; align-items: flex-end; }
.composer textarea { flex: 1; resize: none; font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 8px;
  background: var(--bg); color: var(--fg); min-height: 40px; max-height: 120px; }
.primary { border: 0; border-radius: 8px; padding: 8px 14px; background: var(--accent); color: var(--accent-fg); font-weight: 600; }
.primary:disabled { opacity: .55; cursor: default; }
.secondary { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; background: var(--bg); }
.popover { position: absolute; z-index: 2147483002; display: flex; gap: 2px; padding: 3px; background: var(--fg); border-radius: 8px; box-shadow: 0 4px 14px rgba(0,0,0,.3); }
.popover button { border: 0; background: none; color: var(--bg); padding: 4px 10px; border-radius: 6px; font-size: 14px; }
.popover button:hover, .popover button:focus-visible { background: var(--accent); color: var(--accent-fg); }
.chapter-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin: 0 0 16px; padding: 8px 10px;
  border: 1px solid var(--line); border-radius: 8px; background: var(--soft); }
.chapter-bar .progress:empty { display: none; }
.chapter-bar .progress { font-size: 13px; color: var(--muted); flex-basis: 100%; }
.chapter-view { margin-top: 12px; }
.chapter-view section { margin-bottom: 12px; }
.chapter-view .answer-body { font-size: 16px; }
`;
