/*
 * ngx_http_wechat_module core: OAuth web authorization (网页授权).  WeChat's
 * answers to sns/oauth2/access_token and sns/userinfo parsed, and the
 * session cookie sealed and opened.  Same rules as wx_core.h: spans in,
 * statuses out, output into the caller's allocator.
 */

#ifndef WX_OAUTH_H
#define WX_OAUTH_H

#include "wx_core.h"

#ifdef __cplusplus
extern "C" {
#endif


#define WX_OAUTH_ID_MAX        64     /* bytes of an openid or unionid */
#define WX_OAUTH_NICKNAME_MAX  128    /* bytes kept of a nickname */
#define WX_OAUTH_AVATAR_MAX    512    /* bytes of a headimgurl kept */
#define WX_OAUTH_SESSION_MAX   2048   /* bytes of a session cookie's value */

/*
 * sns/oauth2/access_token's answer: the user's token (printable, capped),
 * openid and unionid (WeChat's shape: URL-safe letters, at most
 * WX_OAUTH_ID_MAX; unionid empty when absent) and scope as given.
 * WX_ERR_API for an errcode answer (wx_api_error tells which), WX_ERR_JSON
 * for any other shape.
 */
typedef struct {
    wx_span_t             access_token;
    wx_span_t             openid;
    wx_span_t             unionid;
    wx_span_t             scope;
} wx_oauth_token_t;

wx_status_t wx_api_oauth_token(wx_span_t json, const wx_allocator_t *a,
    wx_oauth_token_t *out);

/*
 * sns/userinfo's answer: openid (must be the token's), unionid when there
 * is one, the nickname with control characters turned into '?' and cut at
 * a character boundary within WX_OAUTH_NICKNAME_MAX bytes, and headimgurl
 * (http:// or https://, printable; empty when absent or longer than
 * WX_OAUTH_AVATAR_MAX, so that a session always fits its cookie).
 */
typedef struct {
    wx_span_t             openid;
    wx_span_t             unionid;
    wx_span_t             nickname;
    wx_span_t             avatar;
} wx_oauth_user_t;

wx_status_t wx_api_oauth_userinfo(wx_span_t json, const wx_allocator_t *a,
    wx_oauth_user_t *out);


/*
 * A session: who the browser's WeChat user is, for this account, until
 * expires.  Sealed as "v1." hex(fields) "." hex(HMAC-SHA256), the fields
 * framed as "<length>:<bytes>" behind a version tag, so that nobody can
 * change a field, move a session to another account or extend it.
 */
typedef struct {
    wx_span_t             appid;
    wx_span_t             openid;
    wx_span_t             unionid;     /* empty when unknown */
    wx_span_t             scope;       /* "base" or "userinfo" */
    int64_t               expires;     /* Unix seconds */
    wx_span_t             nickname;    /* userinfo only */
    wx_span_t             avatar;
} wx_session_t;

/* The cookie value of s under secret (WX_LINK_MIN_SECRET_LEN bytes). */
wx_status_t wx_session_seal(wx_span_t secret, const wx_session_t *s,
    const wx_allocator_t *a, wx_span_t *out);

/*
 * Opens a cookie value sealed under one of secrets[0..n) (the current one
 * first) for appid: WX_ERR_SIGNATURE when no MAC matches (compared in
 * constant time), WX_ERR_EXPIRED when now >= expires, WX_ERR_ARGS when it
 * is malformed; else WX_OK with the fields pointing into the allocator's
 * memory.
 */
wx_status_t wx_session_open(const wx_span_t *secrets, size_t n,
    wx_span_t appid, wx_span_t value, int64_t now, const wx_allocator_t *a,
    wx_session_t *out);


#ifdef __cplusplus
}
#endif

#endif /* WX_OAUTH_H */
