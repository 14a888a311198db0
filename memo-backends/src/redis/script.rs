//! The Lua scripts: the write (generation check, value tagged with the epoch and its
//! TTL, index update, expired-member pruning and `limit` eviction), the full clear (in
//! one round trip, whatever the size) and one batch of the background drain; each
//! atomic.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: entry, index, generation, epoch. ARGV: value, this entry's ttl in ms (0:
/// none), limit (0: none), the generation the computation started in, the function's
/// longest ttl (index members older than it are pruned). Returns the entries evicted,
/// or -1 when a clear has happened since (nothing is stored).
pub(crate) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[3]) or '0'
if current ~= ARGV[4] then
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local value = 'e' .. (redis.call('GET', KEYS[4]) or '0') .. '|' .. ARGV[1]
if ttl > 0 then
  redis.call('SET', KEYS[1], value, 'PX', ttl)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))
else
  redis.call('SET', KEYS[1], value)
end
redis.call('ZADD', KEYS[2], now, KEYS[1])
local limit = tonumber(ARGV[3])
local evicted = 0
if limit > 0 then
  local over = redis.call('ZCARD', KEYS[2]) - limit
  if over > 0 then
    local victims = redis.call('ZRANGE', KEYS[2], 0, over - 1)
    for i = 1, #victims, 1000 do
      redis.call('UNLINK', unpack(victims, i, math.min(i + 999, #victims)))
    end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
    evicted = #victims
  end
end
return evicted
",
    )
});

/// KEYS: index, generation, epoch, the draining name, the drains set. ARGV: ttl in ms
/// (0: none). Moves the generation and the epoch on (every entry is unreadable from
/// here), renames the index aside for the background drain and lists it; returns the
/// live entries there were. The epoch becomes the later of itself + 1 and Redis's time
/// in ms, so that it never goes back even if its key is lost (evicted, deleted by hand)
/// or holds garbage: an old entry's tag can never become current again.
pub(crate) static CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
redis.call('SET', KEYS[3], string.format('%d', math.max(epoch + 1, now)))
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local ttl = tonumber(ARGV[1])
local live
if ttl > 0 then
  live = redis.call('ZCOUNT', KEYS[1], '(' .. (now - ttl), '+inf')
else
  live = redis.call('ZCARD', KEYS[1])
end
redis.call('RENAME', KEYS[1], KEYS[4])
redis.call('SADD', KEYS[5], KEYS[4])
return live
",
    )
});

/// KEYS: a draining index, its namespace's epoch, the drains set. ARGV: the batch
/// size. Removes one batch of the index's entries, except those rewritten in the
/// current epoch since the clear; when the index is empty, removes it from the drains
/// set. Returns the entries removed, or -1 when the index is done.
pub(crate) static DRAIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local current = 'e' .. (redis.call('GET', KEYS[2]) or '0') .. '|'
local removed = 0
for _, key in ipairs(members) do
  local value = redis.call('GET', key)
  if value and string.sub(value, 1, #current) ~= current then
    redis.call('UNLINK', key)
    removed = removed + 1
  end
end
if #members > 0 then
  redis.call('ZREM', KEYS[1], unpack(members))
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('UNLINK', KEYS[1])
  redis.call('SREM', KEYS[3], KEYS[1])
  return -1
end
return removed
",
    )
});
