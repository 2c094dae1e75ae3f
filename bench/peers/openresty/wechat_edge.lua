-- The edge peer of the benchmark: the module's job written the way an
-- OpenResty user writes it, for Debian's nginx with its lua module
-- (libnginx-mod-http-lua) and the packaged lua-resty libraries (nginx.redis,
-- nginx.sha256, nginx.string) and cjson.
--
--   init_by_lua_block        { require("wechat_edge").init { ... } }
--   init_worker_by_lua_block { require("wechat_edge").init_worker() }
--   location = /wx   { content_by_lua_block { require("wechat_edge").push() } }
--   location = /poll { content_by_lua_block { require("wechat_edge").poll() } }
--
-- A push: the query's signature (sha1 over the sorted token, timestamp and
-- nonce) and its timestamp are checked, the fields of the event are taken
-- from the XML with string patterns, a scan of one of our scenes is resolved
-- with one EVALSHA of the module's own RESOLVE script (its text is handed
-- over by bench/run.pl, which takes it from the build's generated C),
-- with the same keys and arguments as the module, and the passive reply is
-- built.  A poll: one HMGET of the scene and the token's hash compared.
-- Redis connections come from the cosocket keepalive pool.

local redis = require "nginx.redis"
local resty_sha256 = require "nginx.sha256"
local resty_string = require "nginx.string"
local cjson = require "cjson.safe"

local ngx = ngx
local null = ngx.null
local sha1_bin = ngx.sha1_bin
local to_hex = resty_string.to_hex
local find, sub, match, gsub = string.find, string.sub, string.match,
                                string.gsub
local concat, sort = table.concat, table.sort
local tonumber, tostring, type = tonumber, tostring, type
local abs = math.abs

local _M = {}

local conf
local prefix
local resolve_text, resolve_sha
local query_ttl

local STREAM_MAXLEN = "100000"
local POOL_SIZE = 256
local POOL_IDLE_MS = 60000

local replies = {
    bound = "绑定成功",
    conflict = "该微信已绑定其他账号",
    expired = "二维码已过期，请刷新页面后重试",
}

local poll_states = { pending = true, bound = true, conflict = true }

-- patterns for the fields of an event: CDATA text, or plain text
local cdata_pat, text_pat = {}, {}
for _, name in ipairs { "ToUserName", "FromUserName", "CreateTime",
                        "MsgType", "Event", "EventKey", "MsgId" } do
    cdata_pat[name] = "<" .. name .. "><!%[CDATA%[(.-)%]%]></" .. name .. ">"
    text_pat[name] = "<" .. name .. ">([^<]*)</" .. name .. ">"
end


function _M.init(c)
    conf = c
    prefix = "wx:{" .. c.appid .. "}:"
    query_ttl = tostring(2 * c.skew + 1)

    local f = assert(io.open(c.resolve_script, "rb"))
    resolve_text = f:read("*a")
    f:close()
end


local function connect()
    local red = redis:new()
    red:set_timeout(1000)      -- lua-resty-redis 0.27: one timeout
    local ok, err = red:connect("127.0.0.1", conf.redis_port)
    if not ok then
        return nil, err
    end
    return red
end


local function release(red)
    local ok, err = red:set_keepalive(POOL_IDLE_MS, POOL_SIZE)
    if not ok then
        ngx.log(ngx.WARN, "redis keepalive: ", err)
    end
end


-- Loads the script when the worker starts; a NOSCRIPT later falls back
-- to EVAL, which loads it again.
local function load_script(premature)
    if premature then
        return
    end

    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "redis: ", err)
        return
    end

    local sha
    sha, err = red:script("load", resolve_text)
    if not sha then
        ngx.log(ngx.ERR, "SCRIPT LOAD: ", err)
        red:close()
        return
    end

    if sha ~= resolve_sha then
        ngx.log(ngx.ERR, "SCRIPT LOAD returned ", sha, ", expected ",
                resolve_sha)
    end
    release(red)
end


function _M.init_worker()
    resolve_sha = to_hex(sha1_bin(resolve_text))
    local ok, err = ngx.timer.at(0, load_script)
    if not ok then
        ngx.log(ngx.ERR, "timer: ", err)
    end
end


local function field(xml, name)
    local v = match(xml, cdata_pat[name])
    if v then
        return v
    end
    return match(xml, text_pat[name])
end


local function cdata(s)
    if find(s, "]]>", 1, true) then
        s = gsub(s, "%]%]>", "]]]]><![CDATA[>")
    end
    return s
end


-- wxs_ and 32 lower-case hex digits, as the module issues them
local function ours(scene)
    return #scene == 36 and find(scene, "^wxs_[0-9a-f]+$") ~= nil
end


-- The query's signature; returns it when it is good.
local function verified(args)
    local sig, ts, nonce = args.signature, args.timestamp, args.nonce
    if type(sig) ~= "string" or type(ts) ~= "string"
       or type(nonce) ~= "string"
    then
        return nil
    end

    local t = tonumber(ts)
    if not t or abs(ngx.time() - t) > conf.skew then
        return nil
    end

    local parts = { conf.token, ts, nonce }
    sort(parts)
    if to_hex(sha1_bin(concat(parts))) ~= sig then
        return nil
    end
    return sig
end


local function answer(status, ctype, body)
    ngx.status = status
    ngx.header["Content-Type"] = ctype
    ngx.header["Content-Length"] = #body
    ngx.print(body)
end


function _M.push()
    if ngx.req.get_method() ~= "POST" then
        return ngx.exit(405)
    end

    local sig = verified(ngx.req.get_uri_args())
    if not sig then
        return ngx.exit(403)
    end

    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        return ngx.exit(400)
    end

    local to, from = field(body, "ToUserName"), field(body, "FromUserName")
    local created, msgtype = field(body, "CreateTime"), field(body, "MsgType")
    if not (to and from and created and msgtype) then
        return ngx.exit(400)
    end

    local event, key, scene
    if msgtype == "event" then
        event, key = field(body, "Event"), field(body, "EventKey")
        if event == "SCAN" then
            scene = key
        elseif event == "subscribe" and key
               and sub(key, 1, 8) == "qrscene_"
        then
            scene = sub(key, 9)
        end
    end

    if not scene or not ours(scene) then
        -- the business logic of other pushes goes here
        return answer(200, "text/plain", "success")
    end

    local digest = to_hex(sha1_bin(body))
    local now = tostring(ngx.time())

    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "redis: ", err)
        return ngx.exit(503)
    end

    local res
    res, err = red:evalsha(resolve_sha, 6,
        prefix .. "scene:" .. scene, prefix .. "query:" .. sig,
        prefix .. "resolutions", prefix .. "users", prefix .. "openids",
        prefix .. "unionids",
        prefix, from, now, scene, STREAM_MAXLEN, digest, query_ttl, "", "1",
        "")

    if not res and err and find(err, "NOSCRIPT", 1, true) then
        res, err = red:eval(resolve_text, 6,
            prefix .. "scene:" .. scene, prefix .. "query:" .. sig,
            prefix .. "resolutions", prefix .. "users", prefix .. "openids",
            prefix .. "unionids",
            prefix, from, now, scene, STREAM_MAXLEN, digest, query_ttl, "",
            "1", "")
    end

    if not res or type(res) ~= "table" then
        ngx.log(ngx.ERR, "resolve scene ", scene, ": ", err)
        red:close()
        return ngx.exit(503)
    end
    release(red)

    if res[1] == "replay" then
        ngx.log(ngx.WARN, "replayed query with another body, scene ", scene)
        return ngx.exit(403)
    end

    local content = replies[res[1]]
    if not content then
        return ngx.exit(500)
    end

    return answer(200, "text/xml", concat {
        "<xml><ToUserName><![CDATA[", cdata(from),
        "]]></ToUserName><FromUserName><![CDATA[", cdata(to),
        "]]></FromUserName><CreateTime>", res[2],
        "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[",
        content, "]]></Content></xml>" })
end


local function sha256_hex(s)
    local h = resty_sha256:new()
    h:update(s)
    return to_hex(h:final())
end


function _M.poll()
    local method = ngx.req.get_method()
    if method ~= "GET" and method ~= "HEAD" then
        return ngx.exit(405)
    end

    local args = ngx.req.get_uri_args()
    local scene, token = args.scene, args.token
    if type(scene) ~= "string" or type(token) ~= "string" then
        return ngx.exit(400)
    end

    ngx.header["Cache-Control"] = "no-store"

    if not ours(scene) then
        return answer(200, "application/json",
                      cjson.encode { status = "expired" })
    end

    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "redis: ", err)
        return ngx.exit(503)
    end

    local r
    r, err = red:hmget(prefix .. "scene:" .. scene, "status", "openid",
                       "token")
    if not r then
        ngx.log(ngx.ERR, "poll scene ", scene, ": ", err)
        red:close()
        return ngx.exit(503)
    end
    release(red)

    local status, openid, stored = r[1], r[2], r[3]
    local out = { status = "expired" }

    if status ~= null and stored ~= null and poll_states[status]
       and stored == sha256_hex(token)
    then
        out.status = status
        if status == "bound" and openid ~= null then
            out.openid = openid
        end
    end

    return answer(200, "application/json", cjson.encode(out))
end


return _M
