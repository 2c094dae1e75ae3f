/*
 * ngx_http_wechat_module core: the pure logic of the module (signatures,
 * event XML, replies, scenes, JSON, message encryption) behind a small C ABI.
 *
 * Byte spans go in, status codes come out.  Whatever the core produces is
 * written into memory obtained from the caller's allocator, so that nginx
 * pools own it.  No C++ type and no exception crosses this header.
 */

#ifndef WX_CORE_H
#define WX_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif


typedef enum {
    WX_OK = 0,
    WX_ERR_ARGS,          /* a required argument is missing or unusable */
    WX_ERR_NOMEM,         /* the allocator returned NULL */
    WX_ERR_SIGNATURE,     /* a signature does not match */
    WX_ERR_XML,           /* malformed XML, or not a WeChat push */
    WX_ERR_XML_HOSTILE,   /* DOCTYPE, entities, non-UTF-8, NUL, too deep */
    WX_ERR_XML_DUPLICATE, /* a known field appears twice */
    WX_ERR_XML_FIELD,     /* a field breaks its rule, or a required one
                             is missing: wx_event_t.refused names it */
    WX_ERR_TOO_LARGE,     /* document or field over its cap */
    WX_ERR_BASE64,        /* invalid base64 */
    WX_ERR_CRYPTO,        /* cipher failure or bad ciphertext length */
    WX_ERR_PADDING,       /* PKCS#7 padding out of 1..32 or inconsistent */
    WX_ERR_LENGTH,        /* msg_len outside the decrypted buffer */
    WX_ERR_APPID,         /* the AppID trailer is not ours */
    WX_ERR_RANDOM,        /* RAND_bytes failed */
    WX_ERR_NOT_FOUND,     /* no such query argument, or a nil reply */
    WX_ERR_REPLY,         /* a Redis reply of an unexpected shape */
    WX_ERR_JSON,          /* malformed JSON, or an API answer of an
                             unexpected shape or with an unusable field */
    WX_ERR_API,           /* the API answered a non-zero errcode:
                             wx_api_error tells which */
    WX_ERR_EXPIRED,       /* a signed link past its expiry */
    WX_ERR_INTERNAL
} wx_status_t;


typedef struct {
    const unsigned char  *data;
    size_t                len;
} wx_span_t;


/* Returns size bytes owned by the caller's pool, or NULL. */
typedef void *(*wx_alloc_pt)(void *pool, size_t size);

typedef struct {
    wx_alloc_pt           alloc;
    void                 *pool;
} wx_allocator_t;


const char *wx_status_text(wx_status_t status);


/* Signatures: lower-case hex of sha1 over the fields sorted as strings. */

#define WX_SIGNATURE_LEN  40

wx_status_t wx_signature_compute(const wx_span_t *fields, size_t n,
    char out[WX_SIGNATURE_LEN]);

/* WX_OK when signature matches; the comparison takes constant time. */
wx_status_t wx_signature_verify(const wx_span_t *fields, size_t n,
    wx_span_t signature);

/* Constant-time equality of two spans (lengths are not secret). */
int wx_equal_const_time(wx_span_t a, wx_span_t b);

/* Lower-case hex of sha1 / sha256 of data. */
#define WX_SHA1_HEX_LEN    40
#define WX_SHA256_HEX_LEN  64

wx_status_t wx_sha1_hex(wx_span_t data, char out[WX_SHA1_HEX_LEN]);
wx_status_t wx_sha256_hex(wx_span_t data, char out[WX_SHA256_HEX_LEN]);


/* Event XML. */

#define WX_XML_MAX_SIZE    65536   /* bytes of a whole push */
#define WX_XML_MAX_DEPTH   8       /* SendPicsInfo/PicList/item nest to 5 */

typedef struct {
    wx_span_t             to_user;
    wx_span_t             from_user;
    wx_span_t             create_time;
    wx_span_t             msg_type;
    wx_span_t             event;
    wx_span_t             event_key;
    wx_span_t             ticket;
    wx_span_t             msg_id;
    wx_span_t             content;
    wx_span_t             encrypt;

    const char           *refused;     /* the field WX_ERR_XML_FIELD names */
} wx_event_t;

/*
 * Parses a push.  WeChat's flat shape (<xml> and elements of one CDATA
 * section or plain ASCII text) is read directly; any other document goes
 * to a hardened libxml2 reader: no DTD, no entities, no network, UTF-8
 * only, size and depth capped, each known field at most once.
 * Each field follows its rule: the ones that become variables, keys and
 * log lines (ToUserName, FromUserName, MsgType, Event, EventKey, Ticket,
 * Encrypt) hold no control character; CreateTime and MsgId are digits;
 * lengths are capped.  Field values are copied into the allocator's
 * memory; absent fields are empty spans.
 */
wx_status_t wx_event_parse(wx_span_t xml, const wx_allocator_t *a,
    wx_event_t *ev);

/*
 * A message to act on (the plaintext push, or the decrypted one) names
 * its account and sender in WeChat's shape (URL-safe letters, at most 64)
 * and has a MsgType; an encrypted envelope need not.
 */
wx_status_t wx_event_check_message(wx_event_t *ev);

/* The libxml2 option mask the parser uses, for the test that pins it. */
int wx_xml_parser_options(void);


/* Passive text reply; "]]>" inside the text is split across CDATA. */
wx_status_t wx_reply_text(wx_span_t to_user, wx_span_t from_user,
    int64_t create_time, wx_span_t content, const wx_allocator_t *a,
    wx_span_t *out);


/* Scenes. */

/*
 * The scene a subscribe or SCAN event carries: "qrscene_X" for subscribe
 * and "X" for SCAN both give "X".  Only MsgType "event" carries one; an
 * empty span when there is none.
 */
wx_span_t wx_scene_from_event(const wx_event_t *ev);

#define WX_SCENE_LEN  36   /* "wxs_" and 32 hex digits: 128 random bits */
#define WX_TOKEN_LEN  32   /* 128 random bits as hex */

wx_status_t wx_scene_new(char out[WX_SCENE_LEN]);
int wx_scene_is_ours(wx_span_t scene);

/* Lower-case hex of n random bytes from RAND_bytes, into 2n chars. */
wx_status_t wx_random_hex(char *out, size_t n);


/* JSON objects built with a JSON library, for the HTTP answers. */

typedef enum {
    WX_JSON_STRING,
    WX_JSON_INTEGER,
    WX_JSON_STRING_OR_NULL     /* null when the string's data is NULL */
} wx_json_type_t;

typedef struct {
    const char           *key;
    wx_json_type_t        type;
    wx_span_t             string;
    int64_t               integer;
} wx_json_field_t;

wx_status_t wx_json_object(const wx_json_field_t *fields, size_t n,
    const wx_allocator_t *a, wx_span_t *out);


/*
 * The form-decoded values of the arguments names[0..n) of a query string
 * ("a=1&b=2"), in one pass: '+' is a space, %XX a byte, and the first of
 * repeated arguments counts.  An absent argument is {NULL, 0}; a present
 * one, even empty, has data.
 */
wx_status_t wx_query_args(wx_span_t query, const char *const *names,
    size_t n, const wx_allocator_t *a, wx_span_t *values);


/* Redis replies of the module's commands and scripts (hiredis replies). */

struct redisReply;

/*
 * A scene's statuses, in one table for the scripts' answers, the polls and
 * the metrics: those before WX_SCENE_PENDING are also the outcomes of a
 * scan.  A bind scene becomes bound or conflict, a login scene confirmed
 * (the openid is bound) or unbound, a code scene code_sent; login and code
 * scenes become redeemed once wechat_redeem took their code.  With the
 * holder's confirm, a bind scan makes it scanned until the page sends the
 * code the scanner got, and a login scan confirming until the scanner
 * confirms in WeChat (or cancelled, when they refuse).
 */
typedef enum {
    WX_SCENE_BOUND = 0,
    WX_SCENE_CONFLICT,
    WX_SCENE_EXPIRED,
    WX_SCENE_CONFIRMED,
    WX_SCENE_UNBOUND,
    WX_SCENE_CODE_SENT,
    WX_SCENE_SCANNED,
    WX_SCENE_CONFIRMING,
    WX_SCENE_PENDING,
    WX_SCENE_REDEEMED,
    WX_SCENE_CANCELLED,
    WX_SCENE_STATUSES
} wx_scene_status_t;

#define WX_SCAN_OUTCOMES  WX_SCENE_PENDING

const char *wx_scene_status_name(wx_scene_status_t status);

typedef struct {
    wx_scene_status_t     outcome;
    int64_t               time;        /* the first answer's reply time */
    int                   duplicate;   /* a retry of a push seen before */
    int                   replay;      /* its signed query, another body */
} wx_resolution_t;

/* The RESOLVE script's { outcome, time, "new" | "dup" }, or { "replay" }. */
wx_status_t wx_redis_resolution(const struct redisReply *reply,
    wx_resolution_t *out);

typedef struct {
    int                   replay;      /* the query signed other content */
    int                   retry;       /* it was used before, for the same */
    wx_span_t             user;        /* the site user asked for, if any */
    wx_span_t             unionid;     /* the sender's, when known */
} wx_claim_t;

/*
 * The CLAIM script's { "new" | "retry", user or nil, unionid or nil }, or
 * { "replay" }; user and unionid held to the rule of names.
 */
wx_status_t wx_redis_claim(const struct redisReply *reply,
    const wx_allocator_t *a, wx_claim_t *out);

typedef struct {
    wx_span_t             token;       /* empty when there is none */
    int64_t               ttl_ms;      /* its remaining life */
    int64_t               issued_ms;   /* 0 when unknown */
    int                   locked;      /* this caller must refresh it */
    int64_t               backoff_ms;  /* no refresh for this long: the
                                          last one failed; 0 if none */
} wx_token_state_t;

/*
 * The TOKEN script's { token or nil, ttl (ms), issued (ms) or nil, locked,
 * back-off left (ms) }; a token is checked as WeChat's answer is
 * (printable, capped).
 */
wx_status_t wx_redis_token(const struct redisReply *reply,
    const wx_allocator_t *a, wx_token_state_t *out);

/*
 * The QRCODE_URL script's { url, token hash, ttl }: the url of a scene
 * whose poll token is token (compared with the stored hash in constant
 * time), and how long it lives.  An unknown scene, one without a url and a
 * wrong token all give WX_ERR_NOT_FOUND.
 */
wx_status_t wx_redis_qrcode_url(const struct redisReply *reply,
    wx_span_t token, const wx_allocator_t *a, wx_span_t *url,
    int64_t *ttl);

/* What wechat_qrcode does, by the QRCODE_REUSE script's answer. */
#define WX_REUSE_NEW          0    /* a new scene, counted */
#define WX_REUSE_FOUND        1    /* the pending scene, with a new token */
#define WX_REUSE_RATE         2    /* no new scene: over the ceiling */

typedef struct {
    int                   outcome;     /* WX_REUSE_* */
    wx_span_t             ticket;      /* of a scene given back; empty */
    wx_span_t             url;         /* without WeChat's API */
    int64_t               ttl;         /* its life left (s) */
} wx_reuse_t;

/*
 * The QRCODE_REUSE script's { "new" }, { "rate", ms left }, or { "reused",
 * ticket, url, life left (s) }: ticket and url printable, with no space,
 * and capped as WeChat's answer is; the life at least 1 s.
 */
wx_status_t wx_redis_qrcode_reuse(const struct redisReply *reply,
    const wx_allocator_t *a, wx_reuse_t *out);

/*
 * The poll answer for HMGET scene status openid token: the JSON the page
 * gets.  An unknown scene and a wrong token both give {"status":"expired"};
 * the token is compared with the stored hash in constant time.  A login
 * scene that was scanned (confirmed or unbound) shows its login code,
 * wx_login_code of scene and token, until it is redeemed.
 */
wx_status_t wx_redis_poll_answer(const struct redisReply *reply,
    wx_span_t scene, wx_span_t token, const wx_allocator_t *a,
    wx_scene_status_t *status, wx_span_t *json);

typedef struct {
    wx_span_t             kind;        /* "login" or "code" */
    wx_span_t             openid;
    wx_span_t             user;        /* NULL data when not bound */
} wx_redeem_t;

/*
 * The REDEEM script's { "ok", kind, openid, user or nil }, or { "wrong" }
 * (WX_ERR_NOT_FOUND).  openid and user are held to the rule of names: no
 * control character, at most WX_NAME_MAX bytes.
 */
wx_status_t wx_redis_redeem(const struct redisReply *reply,
    const wx_allocator_t *a, wx_redeem_t *out);

/*
 * hiredis 0.14 allocates an array of whatever size a reply announces;
 * this makes the reader refuse arrays larger than any the module expects
 * (an error the connection is dropped for), instead of allocating gigabytes:
 * WX_REDIS_MAX_RANGES for a reply itself, WX_REDIS_MAX_ELEMENTS inside.
 */
struct redisReader;

#define WX_REDIS_MAX_ELEMENTS  64
/* but a reply's outer array: CLUSTER SLOTS has a range per element */
#define WX_REDIS_MAX_RANGES    WX_REDIS_SLOTS

void wx_redis_limit_reader(struct redisReader *reader);

/*
 * Redis replies as they come off a connection.  The reader can only answer
 * "more", "a reply" or "bad input", and nothing in the bytes can abort the
 * process: hiredis's reader, with arrays limited as above, behind a guard
 * that walks the RESP framing and refuses a reply whose size passes
 * max_size as soon as a header announces it, before any of it is
 * buffered, as well as RESP3 types, header lines past 32 bytes and arrays
 * nested deeper than WX_RESP_MAX_DEPTH.
 */
typedef struct wx_resp_reader_s  wx_resp_reader_t;

#define WX_RESP_MAX_DEPTH  4

wx_resp_reader_t *wx_resp_reader_create(size_t max_size);
void wx_resp_reader_free(wx_resp_reader_t *r);

/* WX_OK; WX_ERR_TOO_LARGE or WX_ERR_REPLY: the stream is unusable */
wx_status_t wx_resp_reader_feed(wx_resp_reader_t *r, wx_span_t bytes);

/*
 * The next whole reply in *reply, NULL when more bytes are needed;
 * WX_ERR_REPLY: the stream is unusable.  The reply is the caller's, to
 * free with wx_resp_reply_free.
 */
wx_status_t wx_resp_reader_next(wx_resp_reader_t *r,
    struct redisReply **reply);
void wx_resp_reply_free(struct redisReply *reply);


/* Redis Cluster: a key's slot, by its hash tag when it has one. */

#define WX_REDIS_SLOTS  16384

unsigned wx_redis_slot(wx_span_t key);

typedef struct {
    int                   ask;         /* ASK: this command only */
    unsigned              slot;
    wx_span_t             host;        /* empty: the node that answered */
    unsigned              port;
} wx_redirect_t;

/*
 * An error reply "MOVED slot host:port" or "ASK slot host:port";
 * WX_ERR_NOT_FOUND for any other error.  host points into error.
 */
wx_status_t wx_redis_redirect(wx_span_t error, wx_redirect_t *out);

/* non-zero stops the walk */
typedef int (*wx_slot_range_pt)(void *data, unsigned first, unsigned last,
    wx_span_t host, unsigned port);

/*
 * CLUSTER SLOTS: range() for each range of slots and the master serving
 * it (host empty: the node that answered).  Hosts are printable and at
 * most 45 bytes; the caller decides what it connects to.
 */
wx_status_t wx_redis_cluster_slots(const struct redisReply *reply,
    wx_slot_range_pt range, void *data);

/*
 * An array of at most max elements, each nil (a span with NULL data) or a
 * string held to the rule of names (no control character, at most
 * WX_NAME_MAX bytes), copied into out[0..*n): a script's words and ids.
 */
wx_status_t wx_redis_names(const struct redisReply *reply,
    const wx_allocator_t *a, wx_span_t *out, size_t max, size_t *n);

/* A string reply copied out; WX_ERR_NOT_FOUND for nil. */
wx_status_t wx_redis_string(const struct redisReply *reply,
    const wx_allocator_t *a, wx_span_t *out);


/* Safe mode message encryption (EncodingAESKey, AES-256-CBC). */

#define WX_AES_KEY_LEN       32
#define WX_ENCODING_KEY_LEN  43

/* Decodes a 43-character EncodingAESKey into its 32-byte AES key. */
wx_status_t wx_aes_key_decode(wx_span_t encoding_key,
    unsigned char key[WX_AES_KEY_LEN]);

/*
 * Decrypts the base64 Encrypt field; checks the padding, msg_len and that
 * the AppID trailer equals appid.  The message goes to out.
 */
wx_status_t wx_aes_decrypt(const unsigned char key[WX_AES_KEY_LEN],
    wx_span_t encrypt, wx_span_t appid, const wx_allocator_t *a,
    wx_span_t *out);

/* Encrypts msg for appid with 16 random bytes in front; base64 to out. */
wx_status_t wx_aes_encrypt(const unsigned char key[WX_AES_KEY_LEN],
    wx_span_t msg, wx_span_t appid, const wx_allocator_t *a,
    wx_span_t *out);

/* The encrypted reply XML with its MsgSignature over token and the rest. */
wx_status_t wx_encrypted_reply(wx_span_t token, wx_span_t encrypt,
    int64_t timestamp, wx_span_t nonce, const wx_allocator_t *a,
    wx_span_t *out);


/* WeChat's HTTP APIs (api.weixin.qq.com): answers parsed, requests built. */

#define WX_API_MAX_SIZE       65536  /* bytes of an answer we parse */
#define WX_API_ERRMSG_MAX     256    /* bytes of errmsg kept for logs */
#define WX_API_TOKEN_MAX      512    /* bytes of an access_token */
#define WX_API_TICKET_MAX     512    /* bytes of a QR ticket */
#define WX_API_URL_MAX        1024   /* bytes of a QR url */
#define WX_API_SCENE_MAX      64     /* bytes of a scene_str, WeChat's cap */
#define WX_API_QR_EXPIRE_MAX  2592000  /* 30 days, WeChat's cap */

/*
 * The errcode of any answer: 0 when it carries none or errcode 0.
 * Otherwise errmsg gets a copy of the message for logs and the page's
 * JSON: control characters become '?', and it is cut at a character
 * boundary within WX_API_ERRMSG_MAX bytes.  WX_ERR_JSON when the answer
 * is not a JSON object or errcode is not an integer.
 */
wx_status_t wx_api_error(wx_span_t json, const wx_allocator_t *a,
    int64_t *errcode, wx_span_t *errmsg);

/*
 * The answer of /cgi-bin/token and /cgi-bin/stable_token: the token
 * (printable ASCII without spaces, at most WX_API_TOKEN_MAX bytes, copied
 * NUL-terminated) and a positive expires_in.  WX_ERR_API for an errcode
 * answer, WX_ERR_JSON for any other shape.
 */
wx_status_t wx_api_token(wx_span_t json, const wx_allocator_t *a,
    wx_span_t *token, int64_t *expires_in);

/*
 * The answer of /cgi-bin/ticket/getticket?type=jsapi: the jsapi_ticket,
 * held to the access_token's rule (printable, at most WX_API_TOKEN_MAX
 * bytes, copied NUL-terminated), and a positive expires_in.  WX_ERR_API
 * for an errcode answer, WX_ERR_JSON for any other shape.
 */
wx_status_t wx_api_jsapi_ticket(wx_span_t json, const wx_allocator_t *a,
    wx_span_t *ticket, int64_t *expires_in);

/*
 * The answer of /cgi-bin/qrcode/create: the ticket (printable, capped),
 * the url the QR code encodes (http:// or https://, printable, capped),
 * both copied NUL-terminated, and expire_seconds (0 when absent: a
 * permanent code).  WX_ERR_API for an errcode answer, WX_ERR_JSON else.
 */
wx_status_t wx_api_qrcode(wx_span_t json, const wx_allocator_t *a,
    wx_span_t *ticket, wx_span_t *url, int64_t *expire_seconds);

/*
 * The body of /cgi-bin/qrcode/create for a temporary QR_STR_SCENE code;
 * scene has 1..WX_API_SCENE_MAX bytes, expire_seconds 1..30 days.
 */
wx_status_t wx_api_qrcode_request(wx_span_t scene, int64_t expire_seconds,
    const wx_allocator_t *a, wx_span_t *out);

/* The body of /cgi-bin/stable_token; force_refresh is a boolean. */
wx_status_t wx_api_stable_token_request(wx_span_t appid, wx_span_t secret,
    int force_refresh, const wx_allocator_t *a, wx_span_t *out);

/* One field of a template message: "name": {"value": "..."}. */
typedef struct {
    wx_span_t             name;
    wx_span_t             value;
} wx_template_field_t;

/*
 * The body of /cgi-bin/message/template/send; url is left out when
 * empty.  Invalid UTF-8 in any value is replaced, never sent.
 */
wx_status_t wx_api_template_request(wx_span_t openid, wx_span_t template_id,
    wx_span_t url, const wx_template_field_t *data, size_t n,
    const wx_allocator_t *a, wx_span_t *out);

/* The body of /cgi-bin/message/custom/send for a text message. */
wx_status_t wx_api_custom_text_request(wx_span_t openid, wx_span_t content,
    const wx_allocator_t *a, wx_span_t *out);

/*
 * Percent-encodes every byte but RFC 3986's unreserved characters
 * (A-Z a-z 0-9 - . _ ~), as showqrcode's ticket and link queries need.
 */
wx_status_t wx_url_encode(wx_span_t in, const wx_allocator_t *a,
    wx_span_t *out);


/* QR code images drawn locally with libqrencode, level M. */

#define WX_QR_MAX_TEXT       1024  /* bytes of text to encode */
#define WX_QR_MAX_MODULE_PX  32
#define WX_QR_MAX_MARGIN     16    /* modules of quiet zone; 4 is usual */
#define WX_QR_MAX_SVG_SIZE   4096

/*
 * A 1-bit grayscale PNG of text: each module module_px (1..32) pixels
 * square, with margin modules of white around, so the image is
 * (modules + 2 * margin) * module_px pixels wide and high.
 */
wx_status_t wx_qr_png(wx_span_t text, unsigned module_px, unsigned margin,
    const wx_allocator_t *a, wx_span_t *out);

/*
 * An SVG of text, size (1..WX_QR_MAX_SVG_SIZE) pixels wide and high,
 * with a 4-module quiet zone; the dark modules are one <path>.
 */
wx_status_t wx_qr_svg(wx_span_t text, unsigned size,
    const wx_allocator_t *a, wx_span_t *out);


/* Verification codes and login codes. */

#define WX_DIGITS_MAX      12
#define WX_LOGIN_CODE_LEN  32   /* 128 bits as hex */
#define WX_NAME_MAX        256  /* bytes of a user name or an openid */

/*
 * n (1..WX_DIGITS_MAX) random decimal digits into out, no NUL; uniform:
 * bytes from RAND_bytes of 250 and over are drawn again.
 */
wx_status_t wx_random_digits(char *out, size_t n);

/*
 * The login code of a login scene: 128 bits of SHA-256 over the
 * length-prefixed scene and poll token (128 bits from RAND_bytes), so the
 * poll can show it to the token's holder while Redis keeps only its hash.
 */
wx_status_t wx_login_code(wx_span_t scene, wx_span_t token,
    char out[WX_LOGIN_CODE_LEN]);

/*
 * What Redis keeps of a code: SHA-256 over the length-prefixed kind
 * ("login" or "code"), scene and code, so that a code of one kind never
 * matches a scene of the other, nor another scene.
 */
wx_status_t wx_code_hash(wx_span_t kind, wx_span_t scene, wx_span_t code,
    char out[WX_SHA256_HEX_LEN]);

/*
 * text with each {name} of names[0..n) replaced by values[i]; other braces
 * are kept as they are.
 */
wx_status_t wx_text_expand(wx_span_t text, const char *const *names,
    const wx_span_t *values, size_t n, const wx_allocator_t *a,
    wx_span_t *out);


/*
 * JS-SDK: what a page inside WeChat passes to wx.config.  WeChat signs the
 * page's URL as its browser sees it, without the fragment; the site signs
 * only pages of its own, so that no other site can borrow its JS-SDK.
 */

#define WX_JSSDK_URL_MAX    4096
#define WX_JSSDK_NONCE_LEN  16     /* hex of 8 bytes from RAND_bytes */

/*
 * The page of url, checked: "http://" or "https://", an authority without
 * userinfo whose host is one of hosts[0..n) (without regard to case; an
 * entry "host:port" also names the port, one without any port), only
 * visible ASCII, no backslash, at most WX_JSSDK_URL_MAX bytes.  *page is
 * url up to its fragment, a span into url.  WX_ERR_ARGS for a malformed
 * url, WX_ERR_NOT_FOUND for a host not listed.
 */
wx_status_t wx_jssdk_page(wx_span_t url, const wx_span_t *hosts, size_t n,
    wx_span_t *page);

/*
 * wx.config's signature: lower-case hex of the SHA-1 of
 * "jsapi_ticket=T&noncestr=N&timestamp=TS&url=U", url without its
 * fragment (it is cut here too), none of them empty.
 */
wx_status_t wx_jssdk_sign(wx_span_t ticket, wx_span_t noncestr,
    int64_t timestamp, wx_span_t url, char out[WX_SIGNATURE_LEN]);


/*
 * Signed links: a link into the site that carries a follower's openid,
 * that nobody can forge, extend, swap to another openid, or use at another
 * account or for another purpose.  The signature is HMAC-SHA256 over a
 * version tag and each field as "<length>:<bytes>", so that no two field
 * lists give the same message.
 */

#define WX_LINK_SIG_LEN        64   /* lower-case hex */
#define WX_LINK_MIN_SECRET_LEN 32

typedef struct {
    wx_span_t             appid;       /* the account that signed it */
    wx_span_t             purpose;     /* "register", "login-confirm", ... */
    wx_span_t             openid;
    wx_span_t             scene;       /* empty for a link of no scene */
    int64_t               expires;     /* Unix seconds */
    wx_span_t             nonce;
} wx_link_t;

/*
 * The signature of a link; appid, purpose, openid and nonce (say
 * wx_random_hex's) must not be empty, and the secret needs
 * WX_LINK_MIN_SECRET_LEN bytes, or WX_ERR_ARGS.
 */
wx_status_t wx_link_sign(wx_span_t secret, const wx_link_t *link,
    char out[WX_LINK_SIG_LEN]);

/*
 * Checks sig, in constant time, under each of the n secrets: the current
 * one and, while links signed before a rotation live, the previous one.
 * WX_ERR_SIGNATURE when none matches, whatever the expiry; then
 * WX_ERR_EXPIRED when now > expires, so that only a genuine link is told
 * it expired; else WX_OK.  Every secret needs WX_LINK_MIN_SECRET_LEN bytes.
 */
wx_status_t wx_link_verify(const wx_span_t *secrets, size_t n,
    const wx_link_t *link, wx_span_t sig, int64_t now);

/*
 * "openid=..[&scene=..]&expires=..&nonce=..&sig=..", each value
 * URL-encoded; scene only when the link has one.  The appid and the
 * purpose are signed, not sent: the verifying location knows them.
 */
wx_status_t wx_link_query(wx_span_t secret, const wx_link_t *link,
    const wx_allocator_t *a, wx_span_t *out);


#ifdef __cplusplus
}
#endif

#endif /* WX_CORE_H */
