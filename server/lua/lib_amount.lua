-- lib_amount: `amount(value, min)`, an ARGV amount as an integer in [min, MAX_AMOUNT = 10^12], or
-- nil. A library (see server/scripts.py): pasted where a script says `--#include lib_amount`.

local MAX_AMOUNT = 1000000000000

local function amount(value, min)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < min or n > MAX_AMOUNT then return nil end
  return n
end
