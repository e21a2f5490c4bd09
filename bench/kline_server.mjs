// The fan-out benchmark's stand-in for Eastmoney's kline API (bench/fan_out_bench.py starts it).
//
// node bench/kline_server.mjs LATENCY_SECONDS DAY
//
// Answers every GET with one bar of DAY for the symbol its `secid` names, after LATENCY_SECONDS, on
// kept-alive HTTP/1.1 connections, as Eastmoney's servers answer. It prints its port, serves until
// its stdin closes, then prints the CLOCK_MONOTONIC time of every request it received, in seconds,
// as one JSON array. It is a Node process, not a Python one, so that the stand-in for a remote
// server spends little of this machine's two cores and none of the crawler's interpreter: with a
// Python server (a thread per connection, one interpreter) the bench measured the server as much as
// the crawler (docs/adr/0204-fan-out-bench-server.md).
import http from "node:http";

const latencyMs = Number(process.argv[2]) * 1000;
const day = process.argv[3];
if (!Number.isFinite(latencyMs) || latencyMs < 0 || !/^\d{4}-\d{2}-\d{2}$/.test(day || "")) {
  process.stderr.write("usage: node kline_server.mjs LATENCY_SECONDS YYYY-MM-DD\n");
  process.exit(2);
}

/** @type {number[]} */
const received = [];

/**
 * Eastmoney's kline answer for the `secid` a request names ("1.600000": market 1, code 600000).
 * @param {string} url
 */
function klineBody(url) {
  const secid = new URL(url, "http://localhost").searchParams.get("secid") || "0.000001";
  const code = secid.split(".", 2)[1] || "000001";
  const row = `${day},10.00,10.10,10.20,9.90,12345,12468450.00,3.00,1.00,0.10,0.50`;
  const data = { code, market: code.startsWith("6") ? 1 : 0, klines: [row] };
  return JSON.stringify({ rc: 0, data });
}

const server = http.createServer((request, response) => {
  received.push(Number(process.hrtime.bigint()) / 1e9);
  const body = klineBody(request.url || "/");
  setTimeout(() => {
    response.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
    });
    response.end(body);
  }, latencyMs);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address ? address.port : 0}\n`);
});

process.stdin.resume();
process.stdin.on("end", () => {
  server.close();
  server.closeAllConnections();
  process.stdout.write(`${JSON.stringify(received)}\n`, () => process.exit(0));
});
