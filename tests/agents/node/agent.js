// A busy Node.js program profiled by the real @pyroscope/nodejs agent
// (wall and heap profiles, posted as raw gzipped pprof to /ingest).
// Usage: node agent.js SERVER_URL APP_NAME SECONDS
const Pyroscope = require('@pyroscope/nodejs');

const [url, appName, seconds] = process.argv.slice(2);
Pyroscope.init({
  serverAddress: url,
  appName,
  tags: { agent_test: 'nodejs' },
  // The heap profile is only exported on a periodic flush (stop() sends
  // the last wall profile but no heap), so flush often. Not too often: the
  // agent drops a round's profile while the previous upload is in flight.
  flushIntervalMs: 1500,
});
Pyroscope.start();

function kilnNodeFib(n) {
  return n < 2 ? n : kilnNodeFib(n - 1) + kilnNodeFib(n - 2);
}

// Plain JS objects, so that the memory is on the V8 heap the heap profiler
// samples (a Buffer's bytes are outside it and show up as "(external)").
// A ring of fixed size keeps the retained heap steady.
const retained = new Array(4096);
let next = 0;
function kilnNodeRetain() {
  retained[next] = { n: next, payload: new Array(512).fill(next) };
  next = (next + 1) % retained.length;
}

const deadline = Date.now() + Number(seconds) * 1000;
// V8 may inline kilnNodeRetain here, so heap samples name this function.
// fib(20) per allocation keeps kilnNodeFib well above half of the wall
// time even when the machine is loaded (with fib(18) the allocations and
// their GC took over half on a busy machine).
function kilnNodeBusySlice() {
  const started = Date.now();
  while (Date.now() - started < 100) {
    kilnNodeFib(20);
    kilnNodeRetain();
  }
  if (Date.now() < deadline) {
    setImmediate(kilnNodeBusySlice);
  } else {
    Pyroscope.stop().then(() => console.log('done'));
  }
}
kilnNodeBusySlice();
