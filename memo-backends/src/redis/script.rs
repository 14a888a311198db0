//! The Lua scripts: the write (generation check, value tagged with the epoch and its
//! TTL, index update, expired-member pruning and `limit` eviction), the full clear (in
//! one round trip, whatever the size) and one batch of the background drain; each
//! atomic.

use std::sync::LazyLock;

use redis::Script;

/// A Lua function for the scripts whose KEYS are the entry, its index, generation and
/// epoch, then its n tags' sets: the entry joins each set, which then lives at least
/// `ttl` ms (0: as long as its entries, without expiry); up to two members of each set
/// whose entry is gone are dropped on the way.
const JOIN_TAGS: &str = r"
local function join_tags(n, ttl)
  for i = 1, n do
    local set = KEYS[4 + i]
    local before = redis.call('PTTL', set)
    redis.call('SADD', set, KEYS[1])
    if ttl == 0 then
      redis.call('PERSIST', set)
    elseif before == -2 or (before >= 0 and before < ttl) then
      redis.call('PEXPIRE', set, ttl)
    end
    for _, member in ipairs(redis.call('SRANDMEMBER', set, 2)) do
      if redis.call('EXISTS', member) == 0 then
        redis.call('SREM', set, member)
      end
    end
  end
end
";

/// A script that may call `join_tags`.
fn with_tags(body: &str) -> Script {
    Script::new(&format!("{JOIN_TAGS}{body}"))
}

/// KEYS: entry, index, generation, epoch, then the sets of the entry's n tags. ARGV:
/// the operation, n, how long Redis keeps the entry in ms (0: none), its lifetime in ms
/// (0: none; a value stamped with its write time is not live past it, though `stale`
/// keeps it). On the live entry (one of the current epoch, within its lifetime): `remove` moves the generation on (no fill that began before stores),
/// removes the entry and its index member, and returns 1 if it was live, else 0;
/// `ttl` returns its PTTL (-2 when not live); `touch` restarts its lifetime, rescores
/// it in the index (and its write time, when the value carries one), extends its tags'
/// sets and returns 1 (0 when not live).
pub(crate) static ENTRY: LazyLock<Script> = LazyLock::new(|| {
    with_tags(
        r"
local value = redis.call('GET', KEYS[1])
local current = 'e' .. (redis.call('GET', KEYS[4]) or '0') .. '|'
local live = value and string.sub(value, 1, #current) == current
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lifetime = tonumber(ARGV[4])
if live and lifetime > 0 then
  local written = tonumber(string.match(string.sub(value, #current + 1), '^t(%d+)|'))
  if written and now - written >= lifetime then
    live = false
  end
end
if ARGV[1] == 'remove' then
  redis.call('INCR', KEYS[3])
  if value then
    redis.call('UNLINK', KEYS[1])
  end
  redis.call('ZREM', KEYS[2], KEYS[1])
  return live and 1 or 0
end
if not live then
  return ARGV[1] == 'ttl' and -2 or 0
end
if ARGV[1] == 'ttl' then
  return redis.call('PTTL', KEYS[1])
end
local stamped = string.match(string.sub(value, #current + 1), '^t%d+|(.*)$')
if stamped then
  redis.call('SET', KEYS[1], current .. 't' .. now .. '|' .. stamped)
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('ZADD', KEYS[2], now, KEYS[1])
join_tags(tonumber(ARGV[2]), ttl)
return 1
",
    )
});

/// KEYS: entry, index, generation, epoch, then the sets of the entry's n tags, then
/// their versions. ARGV: value, this entry's ttl in ms (0: none), limit (0: none), the
/// generation the computation started in, the function's longest ttl (index members
/// older than it are pruned), 1 to stamp the value with its write time (`t{ms}|` after
/// the epoch tag, for `stale` and `refresh`) or 0, n, then the versions the lookup saw.
/// Last, the write's lease token (`single_flight = "global"`; empty for none),
/// whose lease key is then the last of KEYS. Returns the entries
/// evicted, or -1 when a clear or a tag invalidation has happened since, or the lease
/// is no longer the write's (nothing is stored). A write holding its lease releases it,
/// stored or not. The entry joins its tags' sets, which live as long as their longest-lived
/// entry; up to two members of each whose entry is gone are dropped.
pub(crate) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    with_tags(
        r"
local n = tonumber(ARGV[7])
local token = ARGV[8 + n]
if token ~= '' then
  if redis.call('GET', KEYS[5 + 2 * n]) ~= token then
    return -1
  end
  redis.call('DEL', KEYS[5 + 2 * n])
end
local current = redis.call('GET', KEYS[3]) or '0'
if current ~= ARGV[4] then
  return -1
end
for i = 1, n do
  if (redis.call('GET', KEYS[4 + n + i]) or '0') ~= ARGV[7 + i] then
    return -1
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local stamp = ''
if ARGV[6] == '1' then
  stamp = 't' .. now .. '|'
end
local value = 'e' .. (redis.call('GET', KEYS[4]) or '0') .. '|' .. stamp .. ARGV[1]
if ttl > 0 then
  redis.call('SET', KEYS[1], value, 'PX', ttl)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))
else
  redis.call('SET', KEYS[1], value)
end
redis.call('ZADD', KEYS[2], now, KEYS[1])
join_tags(n, ttl)
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

/// KEYS: index, generation, epoch, the draining name (listed in the drains set
/// beforehand). ARGV: ttl in ms (0: none). Moves the generation and the epoch on (every
/// entry is unreadable from here) and renames the index aside for the background drain;
/// returns the live entries there were, or -1 when there was no index (then nothing
/// is left to drain, and the caller unlists the draining name). The epoch becomes the later of itself + 1 and Redis's time
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
  return -1
end
local ttl = tonumber(ARGV[1])
local live
if ttl > 0 then
  live = redis.call('ZCOUNT', KEYS[1], '(' .. (now - ttl), '+inf')
else
  live = redis.call('ZCARD', KEYS[1])
end
redis.call('RENAME', KEYS[1], KEYS[4])
return live
",
    )
});

/// KEYS: a draining index, its sub-index's epoch, then some of the index's members
/// (read by the caller: every key a script touches is declared, so that during a slot
/// migration Redis answers `TRYAGAIN` rather than letting a script half-run). Removes
/// those entries, except those rewritten in the current epoch since the clear, and their
/// members. Returns the entries removed; -1 when the index is now empty (and gone: the
/// caller then removes it from the drains set); -2 when there is no such index (yet: the
/// clear that listed it may not have renamed its index yet).
pub(crate) static DRAIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -2
end
local current = 'e' .. (redis.call('GET', KEYS[2]) or '0') .. '|'
local removed = 0
for i = 3, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value and string.sub(value, 1, #current) ~= current then
    redis.call('UNLINK', KEYS[i])
    removed = removed + 1
  end
  redis.call('ZREM', KEYS[1], KEYS[i])
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('UNLINK', KEYS[1])
  return -1
end
return removed
",
    )
});

/// KEYS: the sets of n tags, then their versions, then their draining sets. ARGV: n,
/// how long a version lives in ms. Moves each version on (to the later of itself + 1
/// and Redis's time in ms, so that it never goes back: no fill that began before
/// stores), then moves the tag's set into its draining set (merged with what an
/// interrupted invalidation left there), which [`TAG_BATCH`] empties. O(n): the set
/// is renamed, not read.
pub(crate) static TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local version = tonumber(redis.call('GET', KEYS[n + i]) or '0') or 0
  redis.call('SET', KEYS[n + i], string.format('%d', math.max(version + 1, now)), 'PX', ARGV[2])
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('EXISTS', KEYS[2 * n + i]) == 1 then
      redis.call('SUNIONSTORE', KEYS[2 * n + i], KEYS[2 * n + i], KEYS[i])
      redis.call('UNLINK', KEYS[i])
    else
      redis.call('RENAME', KEYS[i], KEYS[2 * n + i])
    end
    redis.call('PERSIST', KEYS[2 * n + i])
  end
end
return n
",
    )
});

/// KEYS: a tag's draining set in one sub-index, the sub-index's epoch and index, then
/// some of the set's members (read by the caller: every key is declared, see
/// [`DRAIN`]). Removes those entries with their index and set members; returns the live
/// entries removed (those whose value carries the current epoch) and the members left.
pub(crate) static TAG_BATCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = 0
local current = 'e' .. (redis.call('GET', KEYS[2]) or '0') .. '|'
for i = 4, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value then
    if string.sub(value, 1, #current) == current then
      removed = removed + 1
    end
    redis.call('UNLINK', KEYS[i])
  end
  redis.call('ZREM', KEYS[3], KEYS[i])
  redis.call('SREM', KEYS[1], KEYS[i])
end
return {removed, redis.call('SCARD', KEYS[1])}
",
    )
});

/// KEYS: entry, its lease, generation, epoch, then the versions of the entry's n tags.
/// ARGV: a new lease token, the lease in ms, 1 to look for the value first, n. Returns
/// `{1, value, epoch}` when the entry holds a value of the current epoch (and it was
/// looked for); else `{2, generation, versions...}` when the lease was free and is now
/// the token's (what the write will check, read at the moment the computation may
/// start); else `{3, ms}`, the lease another holds and how long it has left.
pub(crate) static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[3] == '1' then
  local value = redis.call('GET', KEYS[1])
  if value then
    local epoch = redis.call('GET', KEYS[4]) or '0'
    local prefix = 'e' .. epoch .. '|'
    if string.sub(value, 1, #prefix) == prefix then
      return {1, value, epoch}
    end
  end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local out = {2, redis.call('GET', KEYS[3]) or '0'}
  for i = 1, tonumber(ARGV[4]) do
    out[#out + 1] = redis.call('GET', KEYS[4 + i]) or '0'
  end
  return out
end
return {3, redis.call('PTTL', KEYS[2])}
",
    )
});

/// KEYS: a lease. ARGV: its token. Removes the lease if it is still the token's.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// KEYS: the bus's sequence counter. ARGV: the channel, a message. Publishes the
/// message numbered by the counter (`{n}#{message}`), so that subscribers see a gap
/// when one goes missing.
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], n .. '#' .. ARGV[2])
return n
",
    )
});
