-- wrk script for the benchmark's POST cases, for one wrk thread (-t1).
--   wrk -s push.lua URL -- scan QUERY FIRST   a fresh scene per request
--   wrk -s push.lua URL -- lines FILE         cycle through "QUERY\tBODY"
--   wrk -s push.lua URL -- fixed QUERY BODY   the same body every time

local counter = 0
local mode, query, body, first, lines

function init(args)
   mode = args[1]
   if mode == "scan" then
      query, first = args[2], tonumber(args[3])
   elseif mode == "lines" then
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

local function scan_body(i)
   return string.format(
      "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
      .. "<FromUserName><![CDATA[o%d]]></FromUserName>"
      .. "<CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType>"
      .. "<Event><![CDATA[SCAN]]></Event>"
      .. "<EventKey><![CDATA[wxs_%032x]]></EventKey></xml>",
      i, os.time(), i)
end

function request()
   local n = counter
   counter = counter + 1
   if mode == "scan" then
      return wrk.format(nil, wrk.path .. "?" .. query, nil,
                        scan_body(first + n))
   elseif mode == "lines" then
      local l = lines[(n % #lines) + 1]
      return wrk.format(nil, wrk.path .. "?" .. l[1], nil, l[2])
   end
   return wrk.format(nil, wrk.path .. "?" .. query, nil, body)
end
