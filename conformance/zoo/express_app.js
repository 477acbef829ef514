// Express streaming with res.write() per item and res.end().
//
// GET /stream?count=N&interval_ms=M writes "1\n" .. "N\n", sleeping M ms before each item
// after the first (defaults: count=10, interval_ms=1000).
//
// ZOO_MODE (default plain):
//   plain        no middleware, no Content-Type set (Node sends none).
//   compression  the `compression` middleware. The app sets text/plain, because without a
//                Content-Type `compression`'s default filter (compressible(type)) says no
//                and nothing is compressed at all.
//   flush        as compression, plus res.flush() after each write, as the compression
//                README says to do for streams (server-sent events and the like).
// PORT: the port on 127.0.0.1 (default 3000). Prints "listening on 127.0.0.1:PORT" when ready.
//
// Run: ZOO_MODE=plain PORT=3000 node express_app.js   (node_modules from npm ci --prefix conformance/zoo)
'use strict';
const express = require('express');

const mode = process.env.ZOO_MODE || 'plain';
const port = Number(process.env.PORT || 3000);
if (!['plain', 'compression', 'flush'].includes(mode)) {
  console.error(`unknown ZOO_MODE ${mode}`);
  process.exit(2);
}

const app = express();
if (mode !== 'plain') {
  app.use(require('compression')());
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

app.get('/stream', async (req, res) => {
  const count = Number(req.query.count ?? 10);
  const intervalMs = Number(req.query.interval_ms ?? 1000);
  if (mode !== 'plain') {
    // Without a type, compression does not compress at all (see above).
    res.type('text/plain');
  }
  for (let i = 1; i <= count; i++) {
    if (i > 1) await sleep(intervalMs);
    res.write(`${i}\n`);
    if (mode === 'flush') res.flush();
  }
  res.end();
});

app.listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${port} (ZOO_MODE=${mode})`);
});
