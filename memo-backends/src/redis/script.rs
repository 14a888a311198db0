//! The Lua script that stores a value: generation check, value with its TTL, index
//! update, expired-member pruning and `limit` eviction, atomically in one round trip.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: entry, index, generation. ARGV: value, ttl in ms (0: none), limit (0: none),
/// the generation the computation started in. Returns the entries evicted, or -1 when
/// a clear has happened since (nothing is stored).
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
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
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
