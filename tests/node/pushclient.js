// Pushes with prom-client's Pushgateway, as tests/clients.rs drives it:
//
//   node pushclient.js STEP URL
//
// Every request of a step goes through one keep-alive agent with a single
// socket, so prom-client's chunked bodies follow each other on one
// connection. Prints one JSON line per request: what was sent, the status
// (or the error's status) and whether the socket was reused.
'use strict';

const http = require('http');
const client = require('prom-client');

const [step, url] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function registry(build) {
  const r = new client.Registry();
  build(r);
  return r;
}

const steps = {
  // push (PUT) a gauge, a counter with labels, a histogram and a summary;
  // then pushAdd (POST) a gzipped body to a second instance.
  push: () => {
    const r = registry(r => {
      new client.Gauge({ name: 'node_job_last_success_unixtime', help: 'Last time the batch job succeeded.', registers: [r] }).set(1234567890.5);
      const c = new client.Counter({ name: 'node_records_total', help: 'Records processed.', labelNames: ['kind'], registers: [r] });
      c.inc({ kind: 'a' }, 3);
      c.inc({ kind: 'b' }, 1.5);
      const h = new client.Histogram({ name: 'node_duration_seconds', help: 'Duration.', buckets: [0.1, 1], registers: [r] });
      h.observe(0.5);
      h.observe(2);
      const s = new client.Summary({ name: 'node_size_bytes', help: 'Size.', percentiles: [0.5, 0.9], registers: [r] });
      s.observe(42);
      s.observe(7);
    });
    const gzipped = registry(r => {
      new client.Gauge({ name: 'node_gzipped', help: 'Pushed gzipped.', registers: [r] }).set(5);
    });
    return [
      ['push', r, {}, { jobName: 'node_batch', groupings: { instance: 'a' } }],
      ['pushAdd gzip', gzipped, { headers: { 'Content-Encoding': 'gzip' } }, { jobName: 'node_batch', groupings: { instance: 'b' } }],
    ];
  },
  // pushAdd replaces only the pushed family of the group; a job name and a
  // grouping value that encodeURIComponent escapes (a space, a '/' sent as
  // %2F, which the reference decodes into a path separator).
  add: () => {
    const r = registry(r => {
      new client.Gauge({ name: 'node_job_last_success_unixtime', help: 'Last time the batch job succeeded.', registers: [r] }).set(1234567999);
    });
    const other = registry(r => {
      new client.Gauge({ name: 'node_other', help: 'Other job.', registers: [r] }).set(7);
    });
    return [
      ['pushAdd', r, {}, { jobName: 'node_batch', groupings: { instance: 'a' } }],
      ['push escaped', other, {}, { jobName: 'node other', groupings: { zone: 'eu west' } }],
      ['push slash', other, {}, { jobName: 'node_other', groupings: { path: '/var/tmp' } }],
      ['pushAdd after redirect', other, {}, { jobName: 'node_other', groupings: { zone: 'x' } }],
    ];
  },
  // Odd paths prom-client builds: no job at all (PUT and DELETE /metrics:
  // 405), a '/' in the job (400), a bad label name (400), an empty value
  // (a trailing '/'), non-ASCII, a '%', a grouping named job.
  edges: () => {
    const r = registry(r => {
      new client.Gauge({ name: 'node_edge', help: 'Edge cases.', registers: [r] }).set(1);
    });
    const anyJob = { requireJobName: false };
    return [
      ['push no job', r, anyJob, {}],
      ['delete no job', r, anyJob, {}],
      ['pushAdd slashed job', r, {}, { jobName: 'a/b' }],
      ['push bad label name', r, {}, { jobName: 'node_edge', groupings: { 'bad-name': 'x' } }],
      ['push empty value', r, {}, { jobName: 'node_edge', groupings: { k: '' } }],
      ['push non-ASCII', r, {}, { jobName: '日本', groupings: { k: 'ü' } }],
      ['push percent', r, {}, { jobName: 'node_edge', groupings: { k: 'v%' } }],
      ['push grouping named job', r, {}, { jobName: 'node_edge', groupings: { instance: 'x', job: 'y' } }],
    ];
  },
  // delete (DELETE) of exactly one group, and of one that does not exist.
  delete: () => {
    const none = new client.Registry();
    return [
      ['delete', none, {}, { jobName: 'node_batch', groupings: { instance: 'b' } }],
      ['delete escaped', none, {}, { jobName: 'node other', groupings: { zone: 'eu west' } }],
      ['delete missing', none, {}, { jobName: 'node_never_pushed' }],
    ];
  },
};

(async () => {
  const build = steps[step];
  if (!build) throw new Error(`unknown step ${step}`);
  for (const [what, r, options, params] of build()) {
    // timeout: a gateway that never answers fails the step.
    const gw = new client.Pushgateway(url, { agent, timeout: 30000, ...options }, r);
    const method = what.split(' ')[0];
    let line;
    try {
      const { resp } = await gw[method](params);
      line = { what, status: resp.statusCode, reused: resp.req.reusedSocket, chunked: resp.req.getHeader('content-length') === undefined };
    } catch (e) {
      const m = /status (\d+)/.exec(e.message);
      line = { what, status: m ? Number(m[1]) : e.message };
    }
    console.log(JSON.stringify(line));
  }
  agent.destroy();
})().catch(e => {
  console.error(e);
  process.exit(1);
});
