"""The run store: run state, fan-in counters, node outputs and events of distributed runs, in Redis.

Every state change of a run is one Lua script, so it is atomic across workers: when two
parents of a node finish at the same moment, exactly one of them sees the node's count of
unfinished parents reach zero, and only that one enqueues it. Nodes made ready are put in
the run's outbox in the same script and leave it when a worker claims their task, so a
worker that dies in between leaves a trace that the redelivery of its task sends again; a
message sent twice that way is told from a redelivery by the broker's `redelivered` flag and
dropped. Scripts are safe to call again after a lost reply (Redis restarted mid-call): a
claim carries a token, and complete/fail answer a repeated call as they did the first.

Keys of a run (`<prefix>:run:<id>` and hashes `<that>:<field>` by node id): the run hash
(graph JSON, input values, settings, status, count of unfinished nodes), `state`, `try`
(the attempt a task may run), `attempts`, `started`, `finished`, `error`, `deliveries`
(of the current attempt), `outputs`, `keys` (cache keys), `remaining` (unfinished parents),
`children`, `claim` (token of the execution holding the node), the `events` list (JSON
`[kind, node, time, data]`, seq = position + 1; each event is also published on the
channel `<run key>:notify` so watchers wake at once), the `outbox` set and the `held` set
(pending nodes after an approval node that waits: the run settles as `waiting` without them,
as the local executor's run does). Dead-letter records go to the list `<prefix>:deadletter`;
worker processes report the models they hold in the hash `<prefix>:workers`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from nodeloom.core.events import EventKind, NodeRecord, NodeState, RunEvent, RunStatus

# Shared by the scripts. Times arrive as text (ARGV[1]) and are written into event JSON
# verbatim: cjson would round them to 14 digits.
_PRELUDE = """
local base = KEYS[1]
local now = ARGV[1]
local function key(name) return base .. ':' .. name end
local function event(kind, node, data)
  local who = 'null'
  if node then who = cjson.encode(node) end
  redis.call('RPUSH', key('events'), '["' .. kind .. '",' .. who .. ',' .. now .. ',' .. (data or '{}') .. ']')
  redis.call('PUBLISH', key('notify'), kind)
end
local RUN_FIELDS = {'state', 'try', 'attempts', 'started', 'finished', 'error', 'deliveries', 'outputs', 'keys',
                    'remaining', 'children', 'claim', 'events', 'outbox', 'feeds', 'joins', 'missing', 'held'}
-- a finished run's keys expire after the run's `ttl` seconds (none when 0)
local function expire_run()
  local ttl = tonumber(redis.call('HGET', base, 'ttl') or '0')
  if ttl == nil or ttl <= 0 then return end
  redis.call('EXPIRE', base, ttl)
  for _, name in ipairs(RUN_FIELDS) do redis.call('EXPIRE', key(name), ttl) end
end
local function maybe_finish()
  if tonumber(redis.call('HGET', base, 'unfinished')) > 0 then return end
  if redis.call('HGET', base, 'status') ~= 'running' then return end
  local status = 'succeeded'
  if redis.call('HGET', base, 'failed') == '1' then status = 'failed'
  elseif redis.call('HGET', base, 'waiting') == '1' then status = 'waiting' end
  redis.call('HSET', base, 'status', status, 'finished_at', now)
  event('run.finished', nil, '{"status":"' .. status .. '"}')
  expire_run()
end
-- a pending node is settled (skipped): it stops counting as unfinished, unless it was held after a
-- waiting node (held nodes were taken off the count already)
local function settle(node)
  if redis.call('SREM', key('held'), node) == 0 then redis.call('HINCRBY', base, 'unfinished', -1) end
end
local function skip_descendants(node)
  local work = cjson.decode(redis.call('HGET', key('children'), node))
  while #work > 0 do
    local child = table.remove(work)
    if redis.call('HGET', key('state'), child) == 'pending' then
      redis.call('HSET', key('state'), child, 'skipped')
      redis.call('HSET', key('finished'), child, now)
      redis.call('SREM', key('outbox'), child)
      settle(child)
      event('node.skipped', child, '{"because":' .. cjson.encode(node) .. ',"reason":"upstream_failed"}')
      for _, grandchild in ipairs(cjson.decode(redis.call('HGET', key('children'), child))) do
        table.insert(work, grandchild)
      end
    end
  end
end
local function fail_node(node, error_json)
  redis.call('HSET', key('state'), node, 'failed')
  redis.call('HSET', key('finished'), node, now)
  redis.call('HSET', key('error'), node, error_json)
  redis.call('HSET', base, 'failed', '1')
  redis.call('HINCRBY', base, 'unfinished', -1)
  local attempts = redis.call('HGET', key('attempts'), node) or '0'
  event('node.failed', node, '{"attempts":' .. attempts .. ',"error":' .. error_json .. '}')
  skip_descendants(node)
  maybe_finish()
end
-- ready children as a flat list {child, attempt, child, attempt, ...}
local function make_ready(ready, child)
  -- a node held after a waiting approval can still become ready (a join whose path through the
  -- approval was skipped by a branch): it runs, so it counts as unfinished again
  if redis.call('SREM', key('held'), child) == 1 then redis.call('HINCRBY', base, 'unfinished', 1) end
  redis.call('SADD', key('outbox'), child)
  table.insert(ready, child)
  table.insert(ready, redis.call('HGET', key('try'), child))
end
local function release_children(node)
  local ready = {}
  for _, child in ipairs(cjson.decode(redis.call('HGET', key('children'), node))) do
    local left = redis.call('HINCRBY', key('remaining'), child, -1)
    if left == 0 and redis.call('HGET', key('state'), child) == 'pending' then
      make_ready(ready, child)
    end
  end
  return ready
end
-- the children of a node some of whose outputs did not come (`gone`: a set of output names, or
-- true when the node was skipped): a child linked to one of those is skipped for the reason
-- 'branch', and so on downstream; a join counts its inputs that did not arrive and is skipped
-- only when none did. Returns the children made ready, in release_children's form.
local function pass_on(node, gone)
  local ready = {}
  local work = {{node, gone}}
  while #work > 0 do
    local item = table.remove(work)
    local parent, lost = item[1], item[2]
    local feeds = redis.call('HGET', key('feeds'), parent)
    if feeds then
      for child, used in pairs(cjson.decode(feeds)) do
        if redis.call('HGET', key('state'), child) == 'pending' then
          local absent = 0
          for _, output in ipairs(used) do
            if lost == true or lost[output] then absent = absent + 1 end
          end
          local skip = false
          local links = redis.call('HGET', key('joins'), child)
          if links then
            local missing = redis.call('HINCRBY', key('missing'), child, absent)
            if redis.call('HINCRBY', key('remaining'), child, -1) == 0 then
              if missing < tonumber(links) then make_ready(ready, child) else skip = true end
            end
          elseif absent == 0 then
            if redis.call('HINCRBY', key('remaining'), child, -1) == 0 then make_ready(ready, child) end
          else
            skip = true
          end
          if skip then
            redis.call('HSET', key('state'), child, 'skipped')
            redis.call('HSET', key('finished'), child, now)
            redis.call('HSET', key('keys'), child, 'skipped')
            settle(child)
            event('node.skipped', child, '{"because":' .. cjson.encode(parent) .. ',"reason":"branch"}')
            table.insert(work, {child, true})
          end
        end
      end
    end
  end
  return ready
end
-- release the children of a completed node whose untaken outputs are the JSON list `gone_json`
local function release_taken(node, gone_json)
  if gone_json == nil or gone_json == '' then return release_children(node) end
  local gone = {}
  for _, output in ipairs(cjson.decode(gone_json)) do gone[output] = true end
  return pass_on(node, gone)
end
-- children of a finished node still in the outbox (made ready, not yet claimed), same form
local function unsent_children(node)
  local ready = {}
  for _, child in ipairs(cjson.decode(redis.call('HGET', key('children'), node))) do
    if redis.call('SISMEMBER', key('outbox'), child) == 1 then
      table.insert(ready, child)
      table.insert(ready, redis.call('HGET', key('try'), child))
    end
  end
  return ready
end
"""

# ARGV: now, node, try, max deliveries, dead-letter record (JSON without the closing brace),
# claim token (one per execution: a retried call after a lost reply is recognised), redelivered
# ('1' when the broker delivers the message again), then the node's upstream node ids.
# Returns {verdict, deliveries, outputs of the upstream nodes...} (outputs only with 'run').
_CLAIM = _PRELUDE + """
local node, try, token = ARGV[2], ARGV[3], ARGV[6]
if redis.call('HGET', base, 'status') ~= 'running' then return {'skip', 0} end
if redis.call('HGET', key('try'), node) ~= try then return {'skip', 0} end
local state = redis.call('HGET', key('state'), node)
local function inputs(verdict, deliveries)
  local reply = {verdict, deliveries}
  if #ARGV > 7 then
    local found = redis.call('HMGET', key('outputs'), unpack(ARGV, 8))
    for i = 1, #found do reply[i + 2] = found[i] end
  end
  return reply
end
if state == 'pending' then
  redis.call('SREM', key('outbox'), node)
  redis.call('HSET', key('state'), node, 'running')
  redis.call('HSET', key('attempts'), node, try)
  redis.call('HSETNX', key('started'), node, now)
  redis.call('HSET', key('deliveries'), node, 1)
  redis.call('HSET', key('claim'), node, token)
  event('node.started', node, '{"attempt":' .. try .. '}')
  return inputs('run', 1)
end
if state == 'running' then
  if redis.call('HGET', key('claim'), node) == token then
    return inputs('run', tonumber(redis.call('HGET', key('deliveries'), node)))
  end
  -- a second message for a running attempt that the broker did not redeliver: a duplicate
  if ARGV[7] ~= '1' then return {'skip', 0} end
  local deliveries = redis.call('HINCRBY', key('deliveries'), node, 1)
  if deliveries > tonumber(ARGV[4]) then
    local lost = deliveries - 1
    local message = 'node ' .. node .. ' was delivered ' .. lost .. ' times and no worker finished it'
    local error_json = '{"code":"node_lost","message":' .. cjson.encode(message) .. ',"deliveries":' .. lost .. '}'
    redis.call('RPUSH', KEYS[2], ARGV[5] .. ',"time":' .. now .. ',"error":' .. error_json .. '}')
    fail_node(node, error_json)
    return {'dead', lost}
  end
  redis.call('HSET', key('claim'), node, token)
  event('node.started', node, '{"attempt":' .. try .. '}')
  return inputs('run', deliveries)
end
if state == 'done' or state == 'cached' then return {'done', 0} end
return {'skip', 0}
"""

# ARGV: now, node, try, outputs, duration, cache key ('' for none), '1' to store the outputs in
# the result cache (KEYS[2]), the JSON list of outputs a branch did not take ('' for none).
# Returns the ready children; a repeated call (its first reply was
# lost) returns the children not yet claimed.
_COMPLETE = _PRELUDE + """
local node, try = ARGV[2], ARGV[3]
if redis.call('HGET', base, 'status') ~= 'running' then return false end
if redis.call('HGET', key('try'), node) ~= try then return false end
local state = redis.call('HGET', key('state'), node)
if state == 'done' then return unsent_children(node) end
if state ~= 'running' then return false end
if ARGV[7] == '1' then redis.call('SET', KEYS[2], ARGV[4]) end
redis.call('HSET', key('state'), node, 'done')
redis.call('HSET', key('finished'), node, now)
redis.call('HSET', key('outputs'), node, ARGV[4])
if ARGV[6] ~= '' then redis.call('HSET', key('keys'), node, ARGV[6]) end
redis.call('HINCRBY', base, 'unfinished', -1)
event('node.done', node, '{"attempts":' .. try .. ',"duration":' .. ARGV[5] .. '}')
local ready = release_taken(node, ARGV[8])
maybe_finish()
return ready
"""

# ARGV: now, node, outputs, cache key, untaken outputs as in _COMPLETE: a pending node whose result was
# found in the cache
_COMPLETE_CACHED = _PRELUDE + """
local node = ARGV[2]
if redis.call('HGET', base, 'status') ~= 'running' then return false end
local state = redis.call('HGET', key('state'), node)
if state == 'cached' then return unsent_children(node) end
if state ~= 'pending' then return false end
redis.call('SREM', key('outbox'), node)
redis.call('HSET', key('state'), node, 'cached')
redis.call('HSET', key('started'), node, now)
redis.call('HSET', key('finished'), node, now)
redis.call('HSET', key('outputs'), node, ARGV[3])
redis.call('HSET', key('keys'), node, ARGV[4])
redis.call('HINCRBY', base, 'unfinished', -1)
event('node.cached', node, '{"cache_key":' .. cjson.encode(ARGV[4]) .. '}')
local ready = release_taken(node, ARGV[5])
maybe_finish()
return ready
"""

# ARGV: now, node, try, error JSON, retry delay ('' for no retry). A repeated call (its first
# reply was lost) gives the same verdict again.
_FAIL = _PRELUDE + """
local node, try = ARGV[2], ARGV[3]
if redis.call('HGET', base, 'status') ~= 'running' then return false end
local state = redis.call('HGET', key('state'), node)
local current = redis.call('HGET', key('try'), node)
if ARGV[5] ~= '' and state == 'pending' and tonumber(current) == tonumber(try) + 1
   and redis.call('SISMEMBER', key('outbox'), node) == 1 then
  return {'retry', tonumber(current)}
end
if state == 'failed' and current == try then return {'failed', 0} end
if state ~= 'running' or current ~= try then return false end
if ARGV[5] ~= '' then
  local next_try = tonumber(try) + 1
  redis.call('HSET', key('state'), node, 'pending')
  redis.call('HSET', key('try'), node, next_try)
  redis.call('SADD', key('outbox'), node)
  event('node.retrying', node, '{"attempt":' .. try .. ',"delay":' .. ARGV[5] .. ',"error":' .. ARGV[4] .. '}')
  return {'retry', next_try}
end
fail_node(node, ARGV[4])
return {'failed', 0}
"""

# ARGV: now, node, try, the node.waiting event's data JSON: an approval node has no decision, so its
# attempt ends with the node waiting; the pending nodes after it are held (they stop counting as
# unfinished) and the run settles as 'waiting' once nothing else can run. Returns 1, or false for a
# stale attempt; a repeated call (its first reply was lost) returns 1 again.
_WAIT = _PRELUDE + """
local node, try = ARGV[2], ARGV[3]
if redis.call('HGET', key('try'), node) ~= try then return false end
local state = redis.call('HGET', key('state'), node)
if state == 'waiting' then return 1 end
if redis.call('HGET', base, 'status') ~= 'running' or state ~= 'running' then return false end
redis.call('HSET', key('state'), node, 'waiting')
redis.call('HSET', key('finished'), node, now)
redis.call('HSET', base, 'waiting', '1')
redis.call('HINCRBY', base, 'unfinished', -1)
event('node.waiting', node, ARGV[4])
local work = cjson.decode(redis.call('HGET', key('children'), node))
while #work > 0 do
  local child = table.remove(work)
  if redis.call('HGET', key('state'), child) == 'pending' and redis.call('SADD', key('held'), child) == 1 then
    redis.call('HINCRBY', base, 'unfinished', -1)
    for _, grandchild in ipairs(cjson.decode(redis.call('HGET', key('children'), child))) do
      table.insert(work, grandchild)
    end
  end
end
maybe_finish()
return 1
"""

# ARGV: now, node, try, data JSON. Returns 0 when the node should stop (run over, attempt stale).
_PROGRESS = _PRELUDE + """
local node, try = ARGV[2], ARGV[3]
if redis.call('HGET', base, 'status') ~= 'running' then return 0 end
if redis.call('HGET', key('state'), node) ~= 'running' or redis.call('HGET', key('try'), node) ~= try then
  return 0
end
event('node.progress', node, ARGV[4])
return 1
"""

# ARGV: now. Returns the task ids of the nodes that were pending or running (to revoke them).
_CANCEL = _PRELUDE + """
if redis.call('HGET', base, 'status') ~= 'running' then return false end
redis.call('HSET', base, 'status', 'cancelled', 'finished_at', now, 'unfinished', 0)
local states = redis.call('HGETALL', key('state'))
local stopped = {}
for i = 1, #states, 2 do
  local node, state = states[i], states[i + 1]
  if state == 'pending' or state == 'running' then
    redis.call('HSET', key('state'), node, 'cancelled')
    redis.call('HSET', key('finished'), node, now)
    event('node.cancelled', node, '{}')
    table.insert(stopped, node)
    table.insert(stopped, redis.call('HGET', key('try'), node))
  end
end
redis.call('DEL', key('outbox'))
event('run.finished', nil, '{"status":"cancelled"}')
expire_run()
return stopped
"""

def task_id(run_id: str, node_id: str, attempt: int) -> str:
    """The Celery task id of one attempt of one node: a redelivered message keeps it."""
    return f"{run_id}.{node_id}.{attempt}"


@dataclass(frozen=True)
class RunDocument:
    """What a worker needs to re-create a run: its graph JSON, input values and settings (all JSON)."""

    graph: dict[str, Any]
    inputs: dict[str, Any]
    config: dict[str, Any]
    use_cache: bool
    #: the graph JSON as stored (workers key their plans by it)
    graph_text: str = ""


class RunStore:
    """Run state of distributed runs in Redis; every change is one atomic script."""

    def __init__(self, client: redis.Redis, prefix: str = "nodeloom", run_ttl: float = 7 * 86400) -> None:
        self.client = client
        self.prefix = prefix
        #: seconds a finished run stays in Redis (0: until deleted)
        self.run_ttl = run_ttl
        self.deadletter_key = f"{prefix}:deadletter"
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._complete_cached = client.register_script(_COMPLETE_CACHED)
        self._fail = client.register_script(_FAIL)
        self._progress = client.register_script(_PROGRESS)
        self._cancel = client.register_script(_CANCEL)
        self._wait = client.register_script(_WAIT)

    @classmethod
    def from_url(cls, url: str, prefix: str = "nodeloom", reconnect_for: float = 60.0,
                 run_ttl: float = 7 * 86400) -> RunStore:
        """A store on the Redis at `url`; a lost connection is retried with backoff for about
        `reconnect_for` seconds (a restarting Redis), every script being safe to call again."""
        steps = max(1, int(reconnect_for / 0.5))
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=steps)
        client = redis.Redis.from_url(url, decode_responses=True, retry=retry,
                                      retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        return cls(client, prefix, run_ttl)

    def close(self) -> None:
        self.client.close()

    def run_key(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def cache_key(self, key: str) -> str:
        return f"{self.prefix}:cache:{key}"

    # -- creating a run ------------------------------------------------------------
    def create_run(
        self,
        run_id: str,
        document: RunDocument,
        graph_name: str,
        node_types: Mapping[str, str],
        upstream: Mapping[str, Sequence[str]],
        downstream: Mapping[str, Sequence[str]],
        outputs: Mapping[str, tuple[str, str]],
        feeds: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        joins: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Record a new run, its `run.started` event, and put its root nodes in the outbox; returns them.

        For branches: `feeds` gives, per node, the outputs each child links to, and `joins` the
        joins (`control.first`) with the count of inputs that must all be missing to skip one.
        """
        base = self.run_key(run_id)
        now = time.time()
        roots = [node_id for node_id, parents in upstream.items() if not parents]
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(base, mapping={
            "graph": json.dumps(document.graph),
            "inputs": json.dumps(document.inputs),
            "config": json.dumps(document.config),
            "use_cache": "1" if document.use_cache else "0",
            "outputs": json.dumps({name: list(link) for name, link in outputs.items()}),
            "types": json.dumps(dict(node_types)),
            "status": "running" if node_types else "succeeded",
            "started_at": repr(now),
            "unfinished": len(node_types),
            "failed": "0",
            "ttl": str(max(0, round(self.run_ttl))),
        })
        if node_types:
            pipe.hset(f"{base}:state", mapping=dict.fromkeys(node_types, "pending"))
            pipe.hset(f"{base}:try", mapping=dict.fromkeys(node_types, 1))
            pipe.hset(f"{base}:remaining", mapping={node_id: len(parents) for node_id, parents in upstream.items()})
            pipe.hset(f"{base}:children", mapping={node_id: json.dumps(list(children))
                                                   for node_id, children in downstream.items()})
            if feeds:
                pipe.hset(f"{base}:feeds", mapping={node_id: json.dumps({c: list(o) for c, o in used.items()})
                                                    for node_id, used in feeds.items()})
            if joins:
                pipe.hset(f"{base}:joins", mapping={node_id: str(count) for node_id, count in joins.items()})
        pipe.rpush(f"{base}:events", json.dumps(["run.started", None, now,
                                                 {"nodes": len(node_types), "graph": graph_name}]))
        if roots:
            pipe.sadd(f"{base}:outbox", *roots)
        if not node_types:
            pipe.hset(base, "finished_at", repr(now))
            pipe.rpush(f"{base}:events", json.dumps(["run.finished", None, now, {"status": "succeeded"}]))
            if self.run_ttl > 0:
                pipe.expire(base, round(self.run_ttl))
                pipe.expire(f"{base}:events", round(self.run_ttl))
        pipe.execute()
        return roots

    def document(self, run_id: str) -> RunDocument | None:
        graph, inputs, config, use_cache = self._texts(
            self.client.hmget(self.run_key(run_id), ["graph", "inputs", "config", "use_cache"])
        )
        if graph is None or inputs is None or config is None:
            return None
        return RunDocument(json.loads(graph), json.loads(inputs), json.loads(config), use_cache == "1", graph)

    def exists(self, run_id: str) -> bool:
        return bool(self.client.exists(self.run_key(run_id)))

    # -- state changes (one script each) -------------------------------------------
    def claim(self, run_id: str, node_id: str, attempt: int, max_deliveries: int, worker: str, token: str,
              redelivered: bool, upstream: Sequence[str]) -> tuple[str, int, list[str | None]]:
        """Take one delivery of a node's task: `run`, `skip` (stale, duplicate or run over), `done`
        (finished before; its children may still need sending) or `dead` (delivered too often).

        With `run` come the stored outputs of the `upstream` nodes, in order.
        """
        record = json.dumps({"run_id": run_id, "node": node_id, "attempt": attempt, "worker": worker})[:-1]
        reply = self._claim(
            keys=[self.run_key(run_id), self.deadletter_key],
            args=[repr(time.time()), node_id, attempt, max_deliveries, record, token, "1" if redelivered else "0",
                  *upstream],
        )
        return str(reply[0]), int(reply[1]), self._texts(reply[2:])

    def complete(self, run_id: str, node_id: str, attempt: int, outputs: str, duration: float,
                 cache_key: str | None, cache: bool = False,
                 untaken: Collection[str] = ()) -> list[tuple[str, int]] | None:
        """Record a node's outputs (and put them in the result cache when `cache`); returns the
        children it made ready with their attempt numbers (None if the attempt was stale).
        `untaken`: the outputs a branch did not take (their consumers are skipped)."""
        ready = self._complete(
            keys=[self.run_key(run_id), self.cache_key(cache_key or "")],
            args=[repr(time.time()), node_id, attempt, outputs, repr(duration), cache_key or "",
                  "1" if cache and cache_key else "0", json.dumps(sorted(untaken)) if untaken else ""],
        )
        return None if ready is None else self._pairs(ready)

    def complete_cached(self, run_id: str, node_id: str, outputs: str, cache_key: str,
                        untaken: Collection[str] = ()) -> list[tuple[str, int]] | None:
        """Complete a pending node from a result-cache hit; returns the children it made ready."""
        ready = self._complete_cached(
            keys=[self.run_key(run_id)],
            args=[repr(time.time()), node_id, outputs, cache_key, json.dumps(sorted(untaken)) if untaken else ""],
        )
        return None if ready is None else self._pairs(ready)

    @staticmethod
    def _pairs(flat: Sequence[Any]) -> list[tuple[str, int]]:
        return [(str(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def fail(self, run_id: str, node_id: str, attempt: int, error: Mapping[str, Any],
             retry_delay: float | None) -> tuple[str, int] | None:
        """Record a failed attempt: `("retry", next attempt)` or `("failed", 0)`; None if stale."""
        verdict = self._fail(
            keys=[self.run_key(run_id)],
            args=[repr(time.time()), node_id, attempt, json.dumps(error, default=str),
                  "" if retry_delay is None else repr(retry_delay)],
        )
        return None if verdict is None else (str(verdict[0]), int(verdict[1]))

    def wait(self, run_id: str, node_id: str, attempt: int, data: Mapping[str, Any]) -> bool:
        """End an approval node's attempt with the node waiting for a decision (`data`: its
        `node.waiting` event's); False if the attempt was stale."""
        return bool(self._wait(
            keys=[self.run_key(run_id)], args=[repr(time.time()), node_id, attempt, json.dumps(data, default=str)]
        ))

    def progress(self, run_id: str, node_id: str, attempt: int, data: Mapping[str, Any]) -> bool:
        """Record a progress event; False when the node should stop (its run is over)."""
        return bool(self._progress(
            keys=[self.run_key(run_id)], args=[repr(time.time()), node_id, attempt, json.dumps(data)]
        ))

    def cancel(self, run_id: str) -> list[tuple[str, int]] | None:
        """Cancel a running run; returns its stopped (node, attempt) pairs, None if it had finished."""
        stopped = self._cancel(keys=[self.run_key(run_id)], args=[repr(time.time())])
        if stopped is None:
            return None
        return [(str(stopped[i]), int(stopped[i + 1])) for i in range(0, len(stopped), 2)]

    # -- reading -------------------------------------------------------------------
    def status(self, run_id: str) -> RunStatus | None:
        value = self.client.hget(self.run_key(run_id), "status")
        return None if value is None else RunStatus(str(value))

    def attempts(self, run_id: str, node_ids: Sequence[str]) -> list[int]:
        return [int(value or 1) for value in self.client.hmget(f"{self.run_key(run_id)}:try", list(node_ids))]

    def outbox(self, run_id: str) -> set[str]:
        return {str(node) for node in self.client.smembers(f"{self.run_key(run_id)}:outbox")}

    def node_outputs(self, run_id: str, node_ids: Sequence[str]) -> list[str | None]:
        if not node_ids:
            return []
        return self._texts(self.client.hmget(f"{self.run_key(run_id)}:outputs", list(node_ids)))

    def node_keys(self, run_id: str, node_ids: Sequence[str]) -> list[str | None]:
        if not node_ids:
            return []
        return self._texts(self.client.hmget(f"{self.run_key(run_id)}:keys", list(node_ids)))

    def cached(self, key: str) -> str | None:
        value = self.client.get(self.cache_key(key))
        return None if value is None else str(value)

    def put_cached(self, key: str, outputs: str) -> None:
        self.client.set(self.cache_key(key), outputs)

    def events(self, run_id: str, after: int = 0) -> list[RunEvent]:
        """The events with `seq > after`."""
        entries = self.client.lrange(f"{self.run_key(run_id)}:events", max(after, 0), -1)
        events = []
        for index, entry in enumerate(entries, start=max(after, 0) + 1):
            kind, node, moment, data = json.loads(entry)
            events.append(RunEvent(index, EventKind(kind), run_id, float(moment), node, data))
        return events

    def records(self, run_id: str) -> tuple[dict[str, Any], dict[str, NodeRecord]]:
        """The run hash and a `NodeRecord` per node."""
        base = self.run_key(run_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(base)
        for field in ("state", "attempts", "started", "finished", "error", "keys"):
            pipe.hgetall(f"{base}:{field}")
        run, states, attempts, started, finished, errors, keys = pipe.execute()
        types: dict[str, str] = json.loads(run.get("types", "{}"))
        records = {}
        for node_id, node_type in types.items():
            state = NodeState(states.get(node_id, "pending"))
            records[node_id] = NodeRecord(
                node_id,
                node_type,
                state,
                int(attempts.get(node_id, 0)),
                float(started[node_id]) if node_id in started else None,
                float(finished[node_id]) if node_id in finished else None,
                None if state is NodeState.SKIPPED else keys.get(node_id),  # a skipped node's key is a marker
                json.loads(errors[node_id]) if node_id in errors else None,
            )
        return run, records

    @staticmethod
    def _texts(values: Sequence[Any]) -> list[str | None]:
        # the client decodes responses: every value is text or missing
        return [None if value is None else str(value) for value in values]

    # -- worker processes ----------------------------------------------------------
    @property
    def workers_key(self) -> str:
        return f"{self.prefix}:workers"

    def report_worker(self, name: str, record: Mapping[str, Any]) -> None:
        """Record what one worker process holds (its loaded models), under `name`."""
        self.client.hset(self.workers_key, name, json.dumps(dict(record)))

    def forget_worker(self, name: str) -> None:
        self.client.hdel(self.workers_key, name)

    def worker_reports(self) -> list[dict[str, Any]]:
        """The latest record of every worker process that reported, by name."""
        reports = self.client.hgetall(self.workers_key)
        return [json.loads(reports[name]) for name in sorted(reports)]

    def deadletters(self) -> list[dict[str, Any]]:
        return [json.loads(entry) for entry in self.client.lrange(self.deadletter_key, 0, -1)]


class RunNotices:
    """Wakes threads waiting on runs when the run store publishes an event of theirs.

    One pattern subscription per process, in one listener thread started on first use; it
    reconnects after Redis restarts. Waiters still poll at their own interval, so a notice
    lost while reconnecting delays a waiter, never blocks it.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._pattern = f"{store.run_key('*')}:notify"
        self._head = len(store.run_key(""))
        # run id -> {notice: the event kind it waits for, None for every kind}
        self._waiting: dict[str, dict[threading.Event, str | None]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, run_id: str, kind: str | None = None) -> Iterator[threading.Event]:
        """An event set whenever `run_id` gets a new event (only of `kind`, if given), for the duration
        of the block."""
        notice = threading.Event()
        with self._lock:
            self._waiting.setdefault(run_id, {})[notice] = kind
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._listen, name="nodeloom-run-notices", daemon=True)
                self._thread.start()
        try:
            yield notice
        finally:
            with self._lock:
                waiters = self._waiting.get(run_id)
                if waiters is not None:
                    waiters.pop(notice, None)
                    if not waiters:
                        del self._waiting[run_id]

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _listen(self) -> None:
        while not self._closed.is_set():
            pubsub = self.store.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
            try:
                pubsub.psubscribe(self._pattern)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None:
                        self._wake(str(message["channel"])[self._head:-len(":notify")], str(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError):
                # Redis went away: wake everyone (they re-read the store) and subscribe again
                with self._lock:
                    for waiters in self._waiting.values():
                        for notice in waiters:
                            notice.set()
                self._closed.wait(0.2)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def _wake(self, run_id: str, kind: str) -> None:
        with self._lock:
            for notice, wanted in self._waiting.get(run_id, {}).items():
                if wanted is None or wanted == kind:
                    notice.set()
