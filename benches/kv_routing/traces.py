"""Traces for the KV-routing experiment: the generated multi-turn trace, Mooncake JSONL (read
and synthesised), and the floor of a trace (what one infinite cache would give).

A trace is a list of conversations; a conversation is a list of turns (requests), each
`{"kind": "chat", "messages": [...]}` or `{"kind": "completion", "prompt": ...}` plus
`max_tokens`. A client replays a conversation's turns in order.
"""
import json
import random
import statistics

from figures import pct

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()


def text(rng, nbytes):
    out = []
    n = 0
    while n < nbytes:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)


def generated_trace(args):
    """Conversations: (system prompt shared by a group) + turns; each turn re-sends history."""
    rng = random.Random(args.seed)
    systems = [f"[system {k}] " + text(rng, args.system_bytes) for k in range(args.prefixes)]
    convs = []
    # Popularity: round-robin over the prefixes, or Zipf(s) (a few system prompts carry most
    # of the traffic, as in real deployments: affinity alone then makes hot spots).
    skew = getattr(args, "zipf", 0.0)
    weights = [1.0 / (k + 1) ** skew for k in range(args.prefixes)]
    pick = random.Random(args.seed + 1)
    for c in range(args.conversations):
        k = pick.choices(range(args.prefixes), weights)[0] if skew > 0 else c % args.prefixes
        sys_prompt = systems[k]
        msgs = [{"role": "system", "content": sys_prompt}]
        turns = []
        for t in range(args.turns):
            msgs = msgs + [{"role": "user", "content": f"[c{c} t{t}] " + text(rng, args.user_bytes)}]
            turns.append({"kind": "chat", "messages": list(msgs), "max_tokens": args.max_tokens})
            msgs = msgs + [{"role": "assistant", "content": text(rng, args.assistant_bytes)}]
        convs.append(turns)
    rng.shuffle(convs)
    return convs


def mooncake_trace(args):
    """Mooncake JSONL → one single-request 'conversation' per line (order kept)."""
    with open(args.mooncake) as f:
        return parse_mooncake(f, args.seed, args.mooncake_block_bytes, args.max_tokens, args.limit)


def parse_mooncake(lines, seed, block_bytes, max_tokens, limit=0):
    """Each hash id becomes one text block (the same text wherever the id appears), so requests
    sharing a hash-id prefix share a prompt prefix. Output lengths are capped at `max_tokens`;
    blank lines are skipped; a malformed line raises ValueError naming its line number."""
    blocks = {}
    rng = random.Random(seed)
    convs = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
            ids = rec["hash_ids"]
            out = int(rec.get("output_length", max_tokens))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"Mooncake trace line {n}: {e}") from None
        parts = []
        for h in ids:
            if h not in blocks:
                blocks[h] = f"<{h}>" + text(rng, block_bytes)
            parts.append(blocks[h])
        convs.append([{"kind": "completion", "prompt": "".join(parts),
                       "max_tokens": max(1, min(out, max_tokens))}])
        if limit and len(convs) >= limit:
            break
    return convs


def synthetic_mooncake(records, seed, docs=6, doc_blocks=(6, 14), unique_blocks=(1, 3)):
    """Mooncake-format records: each request reads a prefix of one shared document (its hash
    ids) and adds a few ids of its own, like Mooncake's conversation and tool-use traces."""
    rng = random.Random(seed)
    next_id = 0
    documents = []
    for _ in range(docs):
        n = rng.randint(*doc_blocks)
        documents.append(list(range(next_id, next_id + n)))
        next_id += n
    out = []
    t = 0
    for _ in range(records):
        doc = rng.choice(documents)
        shared = doc[:rng.randint(len(doc) // 2, len(doc))]
        own = list(range(next_id, next_id + rng.randint(*unique_blocks)))
        next_id += len(own)
        ids = shared + own
        t += rng.randint(50, 400)
        out.append({"timestamp": t, "input_length": 512 * len(ids),
                    "output_length": rng.randint(4, 32), "hash_ids": ids})
    return out


def rendered(turn):
    """The bytes a mocker caches for `turn`: the prompt, or the chat messages in the default
    template (runtime/switchyard-runtime/src/template.rs) with the generation prompt."""
    if turn["kind"] != "chat":
        return turn["prompt"].encode()
    return ("".join(f"<|{m['role']}|>\n{m['content']}\n" for m in turn["messages"])
            + "<|assistant|>\n").encode()


def ideal_blocks(convs, block_bytes):
    """(full blocks, cached blocks) of each request if one infinite cache held every earlier
    request's blocks: the best any router on finite caches could do."""
    seen = set()
    out = []
    for conv in convs:
        for turn in conv:
            data = rendered(turn)
            chain, cached, prefix_hit = [], 0, True
            parent = 0
            for k in range(len(data) // block_bytes):
                parent = hash((parent, data[k * block_bytes:(k + 1) * block_bytes]))
                chain.append(parent)
                if prefix_hit and parent in seen:
                    cached += 1
                else:
                    prefix_hit = False
            seen.update(chain)
            out.append((len(chain), cached))
    return out


def floor(convs, block_bytes, ttft_ms):
    """The floor of a trace: TTFT with `ideal_blocks` and nothing queued, under the mocker's
    prefill model `ttft_ms * max(1, uncached blocks)`, and the hit rate of that one cache.
    Best-peer / floor bounds the ratio any router can reach on the trace (queueing and
    decode time come on top of it for everyone)."""
    blocks = ideal_blocks(convs, block_bytes)
    ttfts = [ttft_ms * max(1, total - cached) for total, cached in blocks]
    return {"ttft_p50_ms": pct(ttfts, 50), "ttft_mean_ms": statistics.fmean(ttfts),
            "ttft_p99_ms": pct(ttfts, 99),
            "hit_rate": sum(c for _, c in blocks) / max(1, sum(t for t, _ in blocks))}
