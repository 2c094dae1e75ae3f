-- wrk script for the benchmark's POST cases, for one wrk thread (-t1).
--   wrk -s push.lua URL -- lines FILE         cycle through "QUERY\tBODY"
--   wrk -s push.lua URL -- fixed QUERY BODY   the same body every time

local counter = 0
local mode, query, body, lines

function init(args)
   mode = args[1]
   if mode == "lines" then
      lines = {}
      for line in io.lines(args[2]) do
         local q, b = line:match("^([^\t]*)\t(.*)$")
         table.insert(lines, { q, b })
      end
   else
      query, body = args[2], args[3]
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "text/xml"
end

function request()
   local n = counter
   counter = counter + 1
   if mode == "lines" then
      local l = lines[(n % #lines) + 1]
      return wrk.format(nil, wrk.path .. "?" .. l[1], nil, l[2])
   end
   return wrk.format(nil, wrk.path .. "?" .. query, nil, body)
end
