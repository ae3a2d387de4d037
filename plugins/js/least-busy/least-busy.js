// least-busy: a Switchyard picker written in JavaScript (componentize-js via jco).
//
// Ranks candidates by load = (in-flight + queued) / weight, ascending; ties go to the lower
// time-to-first-token EWMA, then to the earlier candidate. Unhealthy candidates go last.
// Config: {"queued_weight": number} (default 1) scales how much a queued request counts.

import { log } from 'switchyard:plugin/host@0.1.0';

let queuedWeight = 1;

export const lifecycle = {
  configure(config) {
    let parsed;
    try {
      parsed = JSON.parse(config || '{}') ?? {};
    } catch (e) {
      // Throwing a string makes configure return `err(string)`.
      throw `least-busy config is not JSON: ${e}`;
    }
    if (typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw 'least-busy config must be a JSON object';
    }
    for (const key of Object.keys(parsed)) {
      if (key !== 'queued_weight') throw `least-busy config: unknown key ${key}`;
    }
    if ('queued_weight' in parsed) {
      const w = parsed.queued_weight;
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
        throw 'least-busy config: queued_weight must be a finite number >= 0';
      }
      queuedWeight = w;
    }
    log('debug', `least-busy configured, queued_weight=${queuedWeight}`);
  },
  onTopology(_topology) {},
};

export const picking = {
  pick(_request, candidates) {
    const keyed = candidates.map((c, index) => ({
      index,
      unhealthy: c.health === 'unhealthy' ? 1 : 0,
      load: (c.inFlight + queuedWeight * c.queued) / Math.max(c.weight, 1e-3),
      ttft: c.ttftEwmaMs,
    }));
    keyed.sort((a, b) => a.unhealthy - b.unhealthy || a.load - b.load || a.ttft - b.ttft || a.index - b.index);
    return Uint32Array.from(keyed.map((k) => k.index));
  },
};
