-- lib_amount: `amount(value, min)`, an ARGV amount as an integer in [min, 10^12], or nil.
-- Not a script by itself: pasted by scripts.py where a script says `--@include lib_amount`.

local MAX = 1000000000000

local function amount(value, min)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < min or n > MAX then return nil end
  return n
end
