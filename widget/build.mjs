// Bundle the widget's ES modules and their two dependencies into one file that booktutor serves as
// /widget.js (server/static/widget.js ships in the wheel), and report its size gzipped.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const out = fileURLToPath(new URL("../server/static/widget.js", import.meta.url));
await build({
  entryPoints: [fileURLToPath(new URL("src/index.js", import.meta.url))],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "eof",
  outfile: out,
});
const bytes = readFileSync(out);
console.log(`widget.js: ${(bytes.length / 1024).toFixed(1)} kB, ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(1)} kB gzipped`);
