#include "json.hpp"

wx_status_t
wx::json_out(const nlohmann::ordered_json &doc, const wx_allocator_t *a,
    wx_span_t *out)
{
    std::string text = doc.dump(-1, ' ', false,
                                nlohmann::json::error_handler_t::replace);

    return copy_out(a, text, out);
}

extern "C" wx_status_t
wx_json_object(const wx_json_field_t *fields, size_t n,
    const wx_allocator_t *a, wx_span_t *out)
{
    return wx::guarded([&] {
        nlohmann::ordered_json obj = nlohmann::ordered_json::object();

        for (size_t i = 0; i < n; i++) {
            const wx_json_field_t &f = fields[i];

            if (f.type == WX_JSON_INTEGER) {
                obj[f.key] = f.integer;
            } else if (f.type == WX_JSON_STRING_OR_NULL
                       && f.string.data == nullptr)
            {
                obj[f.key] = nullptr;
            } else {
                obj[f.key] = std::string(wx::view(f.string));
            }
        }

        return wx::json_out(obj, a, out);
    });
}
