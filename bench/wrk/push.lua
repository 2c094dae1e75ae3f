-- wrk script for the benchmark's POST cases, for one wrk thread (-t1).
--   wrk -s push.lua URL -- lines FILE         cycle through "QUERY\tBODY"
--   wrk -s push.lua URL -- fixed QUERY BODY   the same body every time
--
-- Every request is formatted once, in init: sending one then costs wrk
-- the same in both modes, so that a server measured with a file of
-- requests and `return 200` measured with one request are not told apart
-- by the load generator's own work.

local requests = {}
local counter = 0

local function add(query, body)
   table.insert(requests, wrk.format(nil, wrk.path .. "?" .. query, nil, body))
end

function init(args)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "text/xml"
   if args[1] == "lines" then
      for line in io.lines(args[2]) do
         add(line:match("^([^\t]*)\t(.*)$"))
      end
   else
      add(args[2], args[3])
   end
end

function request()
   local r = requests[(counter % #requests) + 1]
   counter = counter + 1
   return r
end
