/* JSON helpers shared by the core's JSON writers; never exported. */

#ifndef WX_JSON_HPP
#define WX_JSON_HPP

#include <nlohmann/json.hpp>

#include "internal.hpp"

namespace wx {

/*
 * Serialises doc compactly into the caller's memory; invalid UTF-8 from a
 * client is replaced, never thrown on.
 */
wx_status_t json_out(const nlohmann::ordered_json &doc,
    const wx_allocator_t *a, wx_span_t *out);

} // namespace wx

#endif
