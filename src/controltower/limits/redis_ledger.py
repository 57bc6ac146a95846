"""The ledger in Redis: every replica admits and settles against the same counters.

One Lua script admits a call (it checks and holds every counter in one atomic step) and
one settles it; both are idempotent by request id, so a retried admission holds nothing
twice and a retried settlement counts nothing twice. Each counter is a hash: `r` holds
the amounts reserved, `s<slot>` the spend of one slot of its window. Holds live in a
sorted set by expiry; each admission first releases up to 100 that expired (their calls
died), so no hold outlives its time by more than the next admission.

Runs on one Redis server (or a primary with replicas), not Redis Cluster: a script
touches the hold of any request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controltower.limits.charges import Charge
from controltower.limits.ledger import Admission, Refusal, frees_at, slot_of

PREFIX = "ct:budget:"
DONE_TTL_MS = 86_400_000  # a settled request id is remembered for a day

# KEYS: the counters, then the holds' sorted set, this call's hold, its done marker
# ARGV: now (ms), hold ttl (ms), hold key prefix, request id, then per counter:
#       limit, amount, slot seconds, slots, current slot
_ADMIT = """
local n = #KEYS - 3
local holds, hold, done = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3]
local now, ttl, hold_prefix, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
if redis.call('EXISTS', hold) == 1 or redis.call('EXISTS', done) == 1 then
  return {0}  -- admitted before: no state
end
local dead = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 100)
for _, old in ipairs(dead) do
  local key = hold_prefix .. old
  local held = redis.call('HGETALL', key)
  for i = 1, #held, 2 do
    redis.call('HINCRBY', held[i], 'r', -tonumber(held[i + 1]))
  end
  redis.call('DEL', key)
  redis.call('ZREM', holds, old)
end
local state = {0}
for i = 1, n do
  local at = 4 + (i - 1) * 5
  local limit, amount = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local slot_s, slots = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local current = tonumber(ARGV[at + 5])
  local fields = redis.call('HGETALL', KEYS[i])
  local spent, reserved, oldest = 0, 0, -1
  for j = 1, #fields, 2 do
    local field, value = fields[j], tonumber(fields[j + 1])
    if field == 'r' then
      reserved = value
    else
      local slot = tonumber(string.sub(field, 2))
      if slot_s > 0 and slot <= current - slots then
        redis.call('HDEL', KEYS[i], field)
      else
        spent = spent + value
        if value > 0 and (oldest < 0 or slot < oldest) then oldest = slot end
      end
    end
  end
  if spent + reserved + amount > limit then
    return {1, i, spent + reserved, oldest}
  end
  table.insert(state, spent + reserved)
  table.insert(state, oldest)
end
for i = 1, n do
  local amount = tonumber(ARGV[4 + (i - 1) * 5 + 2])
  redis.call('HINCRBY', KEYS[i], 'r', amount)
  redis.call('HSET', hold, KEYS[i], amount)
end
if n > 0 then
  redis.call('PEXPIRE', hold, ttl + 3600000)
  redis.call('ZADD', holds, now + ttl, id)
end
return state
"""

# KEYS: the holds' sorted set, this call's hold, its done marker, then the counters
# ARGV: request id, how long the done marker is kept (ms), then per counter: slot field,
#       amount, ttl of the counter (ms, 0: none)
_SETTLE = """
local holds, hold, done = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', done) == 1 then
  return 0
end
local held = redis.call('HGETALL', hold)
for i = 1, #held, 2 do
  redis.call('HINCRBY', held[i], 'r', -tonumber(held[i + 1]))
end
redis.call('DEL', hold)
redis.call('ZREM', holds, ARGV[1])
for i = 4, #KEYS do
  local at = 3 + (i - 4) * 3
  redis.call('HINCRBY', KEYS[i], ARGV[at], tonumber(ARGV[at + 1]))
  local keep = tonumber(ARGV[at + 2])
  if keep > 0 then redis.call('PEXPIRE', KEYS[i], keep) end
end
redis.call('SET', done, 1, 'PX', tonumber(ARGV[2]))
return 1
"""


class RedisLedger:
    """The Ledger on a Redis server (`redis://host:port/db`)."""

    def __init__(self, url: str, *, prefix: str = PREFIX, timeout_s: float = 1.0) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.prefix = prefix
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)

    async def admit(self, request_id: str, charges: Sequence[Charge], ttl_s: float) -> Admission:
        """Hold every charge in Redis, or refuse on the first that would overrun."""
        now_ms = _now_ms()
        keys = [self._counter(c) for c in charges]
        keys += [self._holds, self._hold(request_id), self._done(request_id)]
        args: list[Any] = [now_ms, int(ttl_s * 1000), self.prefix + "hold:", request_id]
        for c in charges:
            args += [c.limit, c.amount, c.slot_s, c.slots, slot_of(c, now_ms / 1000)]
        answer = [int(v) for v in await self._admit(keys=keys, args=args)]
        if answer[0] == 1:
            charge = charges[answer[1] - 1]
            return Admission(Refusal(charge, answer[2], frees_at(charge, answer[3])))
        state = answer[1:]
        if len(state) != 2 * len(charges):  # admitted before (a retry): no state to report
            return Admission()
        used = tuple(state[0::2])
        frees = tuple(frees_at(c, oldest) for c, oldest in zip(charges, state[1::2], strict=True))
        return Admission(None, used, frees)

    async def settle(self, request_id: str, actual: Sequence[Charge]) -> None:
        """Release the hold and count the actual amounts, once per request id."""
        now_s = _now_ms() / 1000
        keys = [self._holds, self._hold(request_id), self._done(request_id)]
        args: list[Any] = [request_id, DONE_TTL_MS]
        for c in actual:
            keys.append(self._counter(c))
            keep_ms = 0 if c.slot_s == 0 else (c.slots + 1) * c.slot_s * 1000
            args += [f"s{slot_of(c, now_s)}", c.amount, keep_ms]
        await self._settle(keys=keys, args=args)

    async def counters(self, charges: Sequence[Charge]) -> list[tuple[int, int]]:
        """(spent in every slot kept, reserved) of each charge's counter (tests, reports)."""
        found = []
        for c in charges:
            fields = await self._redis.hgetall(self._counter(c))
            reserved = int(fields.pop(b"r", 0))
            found.append((sum(int(v) for v in fields.values()), reserved))
        return found

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    @property
    def _holds(self) -> str:
        return self.prefix + "holds"

    def _hold(self, request_id: str) -> str:
        return f"{self.prefix}hold:{request_id}"

    def _done(self, request_id: str) -> str:
        return f"{self.prefix}done:{request_id}"

    def _counter(self, charge: Charge) -> str:
        return f"{self.prefix}c:{charge.counter}"


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
