-- QRCODE_URL: KEYS[1] scene.  Returns { the url its QR code encodes, the
-- poll token's hash, the scene's remaining life (s) }.
local s = redis.call('HMGET', KEYS[1], 'url', 'token')
return { s[1], s[2], redis.call('TTL', KEYS[1]) }
