#pragma once
// The script of the batched mode (sync_store.hpp): one call per interval carries a batch of
// keys. It marks this gateway live, adds each key's admissions to the fleet's count, and gives
// a lease: a share of what is left that no other live gateway holds.
//
// A key's window is a hash: `n` the fleet's count, `l:<gateway>` the lease of each gateway using
// the key, `s:<gateway>` the standby lease of each that went idle (a small reservation, so that
// its next requests need no trust). A gateway is live while its score in the members set (the
// time it last synced, plus the horizon it asked for) is ahead of Redis's clock; the leases of
// the others are ignored and deleted.
//
// KEYS: the members set, then per item: its window's hash and the previous window's (the same
// key when the previous window does not count). ARGV: this gateway's id, its horizon (µs), then
// six per item: op ('u' update and lease, 'r' go idle: keep a standby lease, 'a' only add), the
// admissions to add, the limit, the previous window's weight (ppm, sliding), the hash's time to
// live (ms), the largest standby lease.
// Reply: {live gateways, then per item: count, previous count, room before the lease, lease}.

#include <string_view>

namespace portico::ratelimit {

inline constexpr std::string_view kSyncScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local members = KEYS[1]
local me = ARGV[1]
redis.call('ZADD', members, now + tonumber(ARGV[2]), me)
redis.call('ZREMRANGEBYSCORE', members, '-inf', now)
redis.call('PEXPIRE', members, 86400000)
local out = {redis.call('ZCARD', members)}
local live = {}
local mine, standby = 'l:' .. me, 's:' .. me
for i = 1, (#KEYS - 1) / 2 do
  local cur, prev = KEYS[2 * i], KEYS[2 * i + 1]
  local b = 2 + (i - 1) * 6
  local op = ARGV[b + 1]
  local delta = tonumber(ARGV[b + 2])
  local limit = tonumber(ARGV[b + 3])
  local weight = tonumber(ARGV[b + 4])
  local count
  if delta ~= 0 then
    count = redis.call('HINCRBY', cur, 'n', delta)
  else
    count = tonumber(redis.call('HGET', cur, 'n') or 0)
  end
  local before = 0
  if weight > 0 then before = tonumber(redis.call('HGET', prev, 'n') or 0) end
  local room, lease = 0, 0
  if op == 'r' then
    lease = math.min(tonumber(redis.call('HGET', cur, mine) or 0), tonumber(ARGV[b + 6]))
    redis.call('HDEL', cur, mine)
    if lease > 0 then redis.call('HSET', cur, standby, lease) end
  elseif op == 'u' then
    local held, holders = 0, 1
    local fields = redis.call('HGETALL', cur)
    for j = 1, #fields, 2 do
      local name = fields[j]
      local kind = string.sub(name, 1, 2)
      if name ~= mine and name ~= standby and (kind == 'l:' or kind == 's:') then
        local id = string.sub(name, 3)
        local alive = live[id]
        if alive == nil then
          local score = redis.call('ZSCORE', members, id)
          alive = score ~= false and tonumber(score) > now
          live[id] = alive
        end
        if alive then
          held = held + tonumber(fields[j + 1])
          if kind == 'l:' then holders = holders + 1 end
        else
          redis.call('HDEL', cur, name)
        end
      end
    end
    room = limit - count - math.ceil(before * weight / 1000000) - held
    if room > 0 then lease = math.ceil(room / holders) end
    redis.call('HSET', cur, mine, lease)
    redis.call('HDEL', cur, standby)
  end
  if delta ~= 0 or op ~= 'a' then redis.call('PEXPIRE', cur, ARGV[b + 5]) end
  out[#out + 1] = count
  out[#out + 1] = before
  out[#out + 1] = room
  out[#out + 1] = lease
end
return out
)lua";

}  // namespace portico::ratelimit
