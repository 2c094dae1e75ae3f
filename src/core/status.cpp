#include "internal.hpp"

extern "C" const char *
wx_status_text(wx_status_t status)
{
    switch (status) {
    case WX_OK:                return "ok";
    case WX_ERR_ARGS:          return "bad arguments";
    case WX_ERR_NOMEM:         return "out of memory";
    case WX_ERR_SIGNATURE:     return "signature mismatch";
    case WX_ERR_XML:           return "malformed XML";
    case WX_ERR_XML_HOSTILE:   return "hostile XML (DOCTYPE, entity, "
                                      "encoding, NUL or depth)";
    case WX_ERR_XML_DUPLICATE: return "duplicate XML field";
    case WX_ERR_XML_FIELD:     return "field not allowed";
    case WX_ERR_TOO_LARGE:     return "too large";
    case WX_ERR_BASE64:        return "invalid base64";
    case WX_ERR_CRYPTO:        return "bad ciphertext";
    case WX_ERR_PADDING:       return "bad padding";
    case WX_ERR_LENGTH:        return "bad message length";
    case WX_ERR_APPID:         return "AppID mismatch";
    case WX_ERR_RANDOM:        return "RAND_bytes failed";
    case WX_ERR_NOT_FOUND:     return "not found";
    case WX_ERR_REPLY:         return "unexpected Redis reply";
    case WX_ERR_JSON:          return "malformed or unexpected JSON";
    case WX_ERR_API:           return "WeChat API error";
    case WX_ERR_EXPIRED:       return "expired";
    case WX_ERR_INTERNAL:      break;
    }

    return "internal error";
}
