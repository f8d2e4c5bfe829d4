#pragma once
// The server-side script that decides all of a request's Redis limits in one round trip,
// atomically: every limit is checked first and counted only if all of them admit the request.
// The clock is Redis's own (TIME), so gateways with skewed clocks still share one window.
//
// KEYS: one per limit. ARGV: five per limit — algorithm ('g' gcra, 'f' fixed window,
// 's' sliding window, 'q' quota), limit, window (µs), burst, and for 'g' the longest delay
// (µs, 0: reject) or for 'q' the end of the period (µs since the epoch).
// Reply: {all_admitted, then per limit: admitted, remaining, reset µs, retry-after µs, delay µs}.

#include <string_view>

namespace portico::ratelimit {

inline constexpr std::string_view kRedisScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {1}
local writes = {}
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local algo = ARGV[b + 1]
  local limit = tonumber(ARGV[b + 2])
  local window = tonumber(ARGV[b + 3])
  local burst = tonumber(ARGV[b + 4])
  local extra = tonumber(ARGV[b + 5])
  local allowed, remaining, reset, retry, delay = 0, 0, 0, 0, 0
  if algo == 'g' then
    local step = window / limit
    local depth = (limit + burst) * step
    local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
    if tat < now then tat = now end
    local allow_at = tat + step - depth
    local after = tat
    if allow_at <= now or (extra > 0 and allow_at - now <= extra) then
      allowed = 1
      if allow_at > now then delay = allow_at - now end
      after = tat + step
      writes[#writes + 1] = {KEYS[i], after, after - now}
    else
      retry = allow_at - now
    end
    local used = after - now
    if used < 0 then used = 0 end
    if used < depth and delay == 0 then remaining = math.floor((depth - used) / step) end
    reset = used
  else
    local key, ends, index
    if algo == 'q' then
      key = KEYS[i]
      ends = extra
    else
      index = math.floor(now / window)
      key = KEYS[i] .. ':' .. index
      ends = (index + 1) * window
    end
    local cur = tonumber(redis.call('GET', key) or 0)
    local prev = 0
    local left = ends - now
    if algo == 's' then
      prev = tonumber(redis.call('GET', KEYS[i] .. ':' .. (index - 1)) or 0)
    end
    local used = prev * left / window + cur
    reset = left
    if used + 1 <= limit then
      allowed = 1
      remaining = math.floor(limit - used - 1)
      local ttl = left
      if algo == 's' then ttl = left + window end
      writes[#writes + 1] = {key, false, ttl}
    elseif algo == 's' and cur + 1 <= limit and prev > 0 then
      retry = left - (limit - cur - 1) * window / prev + 1
    elseif algo == 's' and cur > 0 then
      retry = left + window - (limit - 1) * window / cur + 1
    else
      retry = left
    end
  end
  if allowed == 0 then out[1] = 0 end
  out[#out + 1] = allowed
  out[#out + 1] = remaining
  out[#out + 1] = math.floor(reset)
  out[#out + 1] = math.floor(retry)
  out[#out + 1] = math.floor(delay)
end
if out[1] == 0 then
  -- Nothing was counted: what the admitting limits offered is still there.
  for i = 1, #KEYS do
    local b = 2 + (i - 1) * 5
    if out[b] == 1 and out[b + 4] == 0 then
      out[b + 1] = out[b + 1] + 1
      if ARGV[(i - 1) * 5 + 1] == 'g' then
        local step = tonumber(ARGV[(i - 1) * 5 + 3]) / tonumber(ARGV[(i - 1) * 5 + 2])
        out[b + 2] = math.max(0, math.floor(out[b + 2] - step))
      end
    end
  end
end
if out[1] == 1 then
  for _, w in ipairs(writes) do
    local ttl_ms = math.floor(w[3] / 1000) + 1
    if w[2] then
      redis.call('SET', w[1], string.format('%.0f', w[2]), 'PX', ttl_ms)
    else
      redis.call('INCR', w[1])
      redis.call('PEXPIRE', w[1], ttl_ms)
    end
  end
end
return out
)lua";

}  // namespace portico::ratelimit
