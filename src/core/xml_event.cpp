#include <array>
#include <string>
#include <string_view>
#include <memory>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "internal.hpp"

namespace {

/*
 * Entities are never substituted, no DTD is loaded or validated, nothing is
 * included and libxml2 keeps its own size limits: none of the options that
 * would allow those is set.  The declared encoding is ignored because only
 * UTF-8 passes the pre-check.
 */
constexpr int parser_options = XML_PARSE_NONET | XML_PARSE_NOERROR
                               | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC;

struct parser_ctxt_free {
    void operator()(xmlParserCtxt *c) const { xmlFreeParserCtxt(c); }
};

struct doc_free {
    void operator()(xmlDoc *d) const { xmlFreeDoc(d); }
};

using parser_ctxt_ptr = std::unique_ptr<xmlParserCtxt, parser_ctxt_free>;
using doc_ptr = std::unique_ptr<xmlDoc, doc_free>;

/*
 * What a field may hold.  Identifiers become nginx variables, headers to
 * the upstream, Redis keys and log lines, so they carry no control
 * character at all; free text may hold tabs and line breaks.
 */
enum class field_kind {
    identifier,     /* printable: no C0 control and no DEL */
    digits,         /* ASCII digits only */
    text            /* anything but C0 controls other than TAB, LF, CR */
};

struct field_rule {
    const char  *name;
    wx_span_t    wx_event_t::*member;
    field_kind   kind;
    size_t       max_len;
};

/* Lengths leave room over what WeChat sends: a VIEW menu's key is a URL. */
const std::array<field_rule, 10> fields = {{
    {"ToUserName", &wx_event_t::to_user, field_kind::identifier, 64},
    {"FromUserName", &wx_event_t::from_user, field_kind::identifier, 64},
    {"CreateTime", &wx_event_t::create_time, field_kind::digits, 20},
    {"MsgType", &wx_event_t::msg_type, field_kind::identifier, 32},
    {"Event", &wx_event_t::event, field_kind::identifier, 64},
    {"EventKey", &wx_event_t::event_key, field_kind::identifier, 2048},
    {"Ticket", &wx_event_t::ticket, field_kind::identifier, 256},
    {"MsgId", &wx_event_t::msg_id, field_kind::digits, 32},
    {"Content", &wx_event_t::content, field_kind::text, WX_XML_MAX_SIZE},
    {"Encrypt", &wx_event_t::encrypt, field_kind::identifier,
     WX_XML_MAX_SIZE},
}};

constexpr bool
allowed(field_kind kind, unsigned char c)
{
    switch (kind) {
    case field_kind::digits:
        return c >= '0' && c <= '9';
    case field_kind::text:
        return c >= 0x20 || c == '\t' || c == '\n' || c == '\r';
    case field_kind::identifier:
        break;
    }

    return c >= 0x20 && c != 0x7f;
}

using byte_set = std::array<bool, 256>;

template <typename Pred>
constexpr byte_set
byte_table(Pred in_set)
{
    byte_set t{};

    for (size_t c = 0; c < t.size(); c++) {
        t[c] = in_set(static_cast<unsigned char>(c));
    }

    return t;
}

/* The bytes allowed, one table per kind in its order: one load a byte. */
constexpr std::array<byte_set, 3> allowed_bytes = {{
    byte_table([](unsigned char c) {
        return allowed(field_kind::identifier, c);
    }),
    byte_table([](unsigned char c) { return allowed(field_kind::digits, c); }),
    byte_table([](unsigned char c) { return allowed(field_kind::text, c); }),
}};

bool
follows_rule(const field_rule &rule, std::string_view value)
{
    if (value.size() > rule.max_len) {
        return false;
    }

    const byte_set &ok = allowed_bytes[static_cast<size_t>(rule.kind)];

    for (char c : value) {
        if (!ok[static_cast<unsigned char>(c)]) {
            return false;
        }
    }

    return true;
}

int
field_index(std::string_view name)
{
    for (size_t i = 0; i < fields.size(); i++) {
        if (name == fields[i].name) {
            return static_cast<int>(i);
        }
    }

    return -1;
}

/* Account ids (gh_...) and openids: URL-safe base64 letters, and '_'. */
bool
is_account_name(wx_span_t s)
{
    if (s.len == 0 || s.len > 64) {
        return false;
    }

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return false;
        }
    }

    return true;
}

/*
 * The parse is streamed: the handlers below collect the known fields of
 * the root's children as they go by, and no tree is built.
 */
struct parse_state {
    std::array<std::string, fields.size()>  values;
    std::array<bool, fields.size()>         seen{};
    int                                     field = -1;  /* being read */
    int                                     field_depth = 0;
    int                                     nested = -1; /* a field with
                                                            elements in it */
    bool                                    hostile = false;
    bool                                    duplicate = false;
    bool                                    root_is_xml = false;
};

parse_state *
state_of(void *ctx)
{
    return static_cast<parse_state *>(
               static_cast<xmlParserCtxtPtr>(ctx)->_private);
}

void
stop_hostile(void *ctx)
{
    state_of(ctx)->hostile = true;
    xmlStopParser(static_cast<xmlParserCtxtPtr>(ctx));
}

/* Any DOCTYPE stops the parse before its internal subset is read. */
void
on_internal_subset(void *ctx, const xmlChar *, const xmlChar *,
    const xmlChar *)
{
    stop_hostile(ctx);
}

void
on_entity_decl(void *ctx, const xmlChar *, int, const xmlChar *,
    const xmlChar *, xmlChar *)
{
    stop_hostile(ctx);
}

void
on_document(void *)
{
}

void
on_comment(void *, const xmlChar *)
{
}

void
on_processing_instruction(void *, const xmlChar *, const xmlChar *)
{
}

void
on_reference(void *ctx, const xmlChar *)
{
    stop_hostile(ctx);
}

void
on_start_element(void *ctx, const xmlChar *localname, const xmlChar *,
    const xmlChar *, int, const xmlChar **, int, int, const xmlChar **)
{
    auto *ctxt = static_cast<xmlParserCtxtPtr>(ctx);
    parse_state *st = state_of(ctx);
    int depth = ctxt->nameNr;       /* the open ancestors of this element */
    auto name = reinterpret_cast<const char *>(localname);

    if (depth >= WX_XML_MAX_DEPTH) {
        stop_hostile(ctx);
        return;
    }

    /* a field is text: readers that stop at an element would differ */
    if (st->field >= 0) {
        st->nested = st->field;
        xmlStopParser(ctxt);
        return;
    }

    if (depth == 0) {
        st->root_is_xml = std::strcmp(name, "xml") == 0;
        return;
    }

    if (depth != 1) {
        return;
    }

    int i = field_index(name);
    if (i < 0) {
        return;
    }

    if (st->seen[static_cast<size_t>(i)]) {
        st->duplicate = true;
        xmlStopParser(ctxt);
        return;
    }

    st->seen[static_cast<size_t>(i)] = true;
    st->field = i;
    st->field_depth = depth;
}

void
on_end_element(void *ctx, const xmlChar *, const xmlChar *, const xmlChar *)
{
    auto *ctxt = static_cast<xmlParserCtxtPtr>(ctx);
    parse_state *st = state_of(ctx);

    /* nameNr still counts the element that ends */
    if (st->field >= 0 && ctxt->nameNr - 1 == st->field_depth) {
        st->field = -1;
    }
}

/* Text and CDATA of a field and of anything nested in it, in order. */
void
on_text(void *ctx, const xmlChar *text, int len)
{
    parse_state *st = state_of(ctx);

    if (st->field >= 0) {
        st->values[static_cast<size_t>(st->field)].append(
            reinterpret_cast<const char *>(text), static_cast<size_t>(len));
    }
}

/*
 * One parser context per thread, reused: creating one (and its dictionary)
 * was the largest part of a parse.  It is made anew after a failed parse,
 * after a while, and as soon as its dictionary of names passes a bound far
 * below libxml2's own limit (10 MB), which refuses every document that
 * needs a new name: without the bound, valid documents full of long names
 * would make the next real push fail.  A document (WX_XML_MAX_SIZE) adds
 * at most a few of the dictionary's pools, 4 times larger each, so it
 * cannot take a dictionary under the bound to the limit.
 */
constexpr unsigned ctxt_max_uses = 1000;
constexpr size_t ctxt_max_dict_bytes = 256 * 1024;

struct reusable_ctxt {
    parser_ctxt_ptr  ctxt;
    unsigned         uses = 0;
};

thread_local reusable_ctxt  reusable;

xmlParserCtxtPtr
acquire_ctxt()
{
    if (reusable.ctxt && ++reusable.uses < ctxt_max_uses
        && xmlDictGetUsage(reusable.ctxt->dict) <= ctxt_max_dict_bytes)
    {
        return reusable.ctxt.get();
    }

    xmlInitParser();

    reusable.ctxt.reset(xmlNewParserCtxt());
    reusable.uses = 0;

    xmlParserCtxtPtr ctxt = reusable.ctxt.get();
    if (ctxt == nullptr) {
        return nullptr;
    }

    xmlSAXHandler *sax = ctxt->sax;

    sax->internalSubset = on_internal_subset;
    sax->externalSubset = on_internal_subset;
    sax->entityDecl = on_entity_decl;
    sax->reference = on_reference;
    sax->startElementNs = on_start_element;
    sax->endElementNs = on_end_element;
    sax->characters = on_text;
    sax->ignorableWhitespace = on_text;
    sax->cdataBlock = on_text;

    /*
     * No document: the handlers above collect all there is to keep, and
     * nothing else may make nodes, which would have no document to go to.
     */
    sax->startDocument = on_document;
    sax->endDocument = on_document;
    sax->comment = on_comment;
    sax->processingInstruction = on_processing_instruction;

    return ctxt;
}

void
release_ctxt()
{
    reusable.ctxt.reset();
}

char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool
equal_ignore_case(std::string_view a, std::string_view b)
{
    if (a.size() != b.size()) {
        return false;
    }

    for (size_t i = 0; i < a.size(); i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }

    return true;
}

/* UTF-8 only: no UTF-16/32 byte order mark, no other declared encoding. */
bool
utf8_declared(std::string_view doc)
{
    if (doc.size() >= 2
        && ((doc[0] == '\xfe' && doc[1] == '\xff')
            || (doc[0] == '\xff' && doc[1] == '\xfe')))
    {
        return false;
    }

    if (doc.substr(0, 3) == "\xef\xbb\xbf") {
        doc.remove_prefix(3);
    }

    if (doc.substr(0, 5) != "<?xml") {
        return true;
    }

    std::string_view decl = doc.substr(0, doc.find("?>"));
    size_t at = decl.find("encoding");
    if (at == std::string_view::npos) {
        return true;
    }

    decl.remove_prefix(at + 8);
    size_t open = decl.find_first_of("\"'");
    if (open == std::string_view::npos) {
        return false;
    }

    size_t close = decl.find(decl[open], open + 1);
    if (close == std::string_view::npos) {
        return false;
    }

    std::string_view name = decl.substr(open + 1, close - open - 1);

    return equal_ignore_case(name, "utf-8") || equal_ignore_case(name, "utf8");
}

using field_values = std::array<std::string_view, fields.size()>;

/*
 * WeChat writes every push in one flat shape: <xml>, then elements that
 * each hold one CDATA section or plain text, then </xml>.  That shape is
 * read here without libxml2, whose parse was half of a push's work.  All
 * else -- a declaration, an attribute, a reference, a nested element, a
 * CR, a byte outside printable ASCII, TAB and LF, a duplicate -- is left to
 * libxml2, which decides.  For what this reader accepts, both give the same
 * fields: the event fuzzer checks that.
 */
class flat_reader {
public:
    explicit flat_reader(std::string_view doc) : rest_(doc) {}

    bool read(field_values &values);

private:
    /* printable ASCII, TAB and LF: what needs no XML processing at all */
    static constexpr byte_set plain = byte_table([](unsigned char c) {
        return (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n';
    });

    bool take(std::string_view s);
    void skip_space();
    bool start_tag(std::string_view &name);
    bool content(std::string_view &value);

    std::string_view  rest_;
};

bool
flat_reader::take(std::string_view s)
{
    if (rest_.substr(0, s.size()) != s) {
        return false;
    }

    rest_.remove_prefix(s.size());
    return true;
}

/* Between elements: libxml2 reports it, and nothing keeps it. */
void
flat_reader::skip_space()
{
    while (!rest_.empty()
           && (rest_[0] == ' ' || rest_[0] == '\t' || rest_[0] == '\n'
               || rest_[0] == '\r'))
    {
        rest_.remove_prefix(1);
    }
}

/* "<Name>": ASCII name characters, no namespace, no attribute. */
bool
flat_reader::start_tag(std::string_view &name)
{
    if (!take("<") || rest_.empty()) {
        return false;
    }

    auto letter = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    };

    if (!letter(rest_[0])) {
        return false;
    }

    size_t n = 1;
    while (n < rest_.size()
           && (letter(rest_[n]) || (rest_[n] >= '0' && rest_[n] <= '9')
               || rest_[n] == '-' || rest_[n] == '.'))
    {
        n++;
    }

    name = rest_.substr(0, n);
    rest_.remove_prefix(n);

    return take(">");
}

/* One CDATA section or one run of plain text, possibly empty. */
bool
flat_reader::content(std::string_view &value)
{
    size_t end;

    if (take("<![CDATA[")) {
        end = rest_.find("]]>");
        if (end == std::string_view::npos) {
            return false;
        }

        value = rest_.substr(0, end);
        rest_.remove_prefix(end + 3);

    } else {
        end = 0;
        while (end < rest_.size() && rest_[end] != '<' && rest_[end] != '&'
               && rest_[end] != '>')
        {
            end++;
        }

        value = rest_.substr(0, end);
        rest_.remove_prefix(end);
    }

    for (char c : value) {
        if (!plain[static_cast<unsigned char>(c)]) {
            return false;
        }
    }

    return true;
}

bool
flat_reader::read(field_values &values)
{
    std::array<bool, fields.size()> seen{};

    if (!take("<xml>")) {
        return false;
    }

    for ( ;; ) {
        skip_space();

        if (take("</xml>")) {
            skip_space();
            return rest_.empty();
        }

        std::string_view name, value;

        if (!start_tag(name) || !content(value) || !take("</")
            || !take(name) || !take(">"))
        {
            return false;
        }

        int i = field_index(name);
        if (i < 0) {
            continue;
        }

        if (seen[static_cast<size_t>(i)]) {
            return false;
        }

        seen[static_cast<size_t>(i)] = true;
        values[static_cast<size_t>(i)] = value;
    }
}

/* libxml2's parse, for every document that is not in the flat shape. */
wx_status_t
read_with_libxml2(std::string_view doc, parse_state &state,
    field_values &values, wx_event_t *ev)
{
    xmlParserCtxtPtr ctxt = acquire_ctxt();
    if (ctxt == nullptr) {
        return WX_ERR_NOMEM;
    }

    ctxt->_private = &state;

    /* no encoding argument: with IGNORE_ENC the input is read as UTF-8 */
    doc_ptr tree(xmlCtxtReadMemory(ctxt, doc.data(),
                                   static_cast<int>(doc.size()), nullptr,
                                   nullptr, parser_options));
    ctxt->_private = nullptr;

    bool well_formed = ctxt->wellFormed && !state.duplicate
                       && state.nested < 0;

    if (state.hostile || !well_formed) {
        release_ctxt();
    }

    if (state.hostile) {
        return WX_ERR_XML_HOSTILE;
    }

    if (state.duplicate) {
        return WX_ERR_XML_DUPLICATE;
    }

    if (state.nested >= 0) {
        ev->refused = fields[static_cast<size_t>(state.nested)].name;
        return WX_ERR_XML_FIELD;
    }

    if (!well_formed || !state.root_is_xml) {
        return WX_ERR_XML;
    }

    for (size_t i = 0; i < fields.size(); i++) {
        values[i] = state.values[i];
    }

    return WX_OK;
}

wx_status_t
parse(std::string_view doc, const wx_allocator_t *a, wx_event_t *ev,
    bool flat_allowed)
{
    *ev = wx_event_t{};

    if (doc.size() > WX_XML_MAX_SIZE) {
        return WX_ERR_TOO_LARGE;
    }

    if (doc.find('\0') != std::string_view::npos || !utf8_declared(doc)) {
        return WX_ERR_XML_HOSTILE;
    }

    field_values values;
    parse_state state;      /* owns what libxml2 reads; values point in */

    if (!flat_allowed || !flat_reader(doc).read(values)) {
        values = field_values{};

        wx_status_t rc = read_with_libxml2(doc, state, values, ev);
        if (rc != WX_OK) {
            return rc;
        }
    }

    for (size_t i = 0; i < fields.size(); i++) {
        if (!follows_rule(fields[i], values[i])) {
            ev->refused = fields[i].name;
            return WX_ERR_XML_FIELD;
        }
    }

    for (size_t i = 0; i < fields.size(); i++) {
        wx_status_t rc = wx::copy_out(a, values[i], &(ev->*fields[i].member));
        if (rc != WX_OK) {
            return rc;
        }
    }

    return WX_OK;
}

} // namespace

extern "C" int
wx_xml_parser_options(void)
{
    return parser_options;
}

extern "C" wx_status_t
wx_event_check_message(wx_event_t *ev)
{
    if (ev == nullptr) {
        return WX_ERR_ARGS;
    }

    ev->refused = nullptr;

    if (!is_account_name(ev->to_user)) {
        ev->refused = "ToUserName";

    } else if (!is_account_name(ev->from_user)) {
        ev->refused = "FromUserName";

    } else if (ev->msg_type.len == 0) {
        ev->refused = "MsgType";
    }

    return ev->refused ? WX_ERR_XML_FIELD : WX_OK;
}

extern "C" wx_status_t
wx_event_parse(wx_span_t xml, const wx_allocator_t *a, wx_event_t *ev)
{
    if (a == nullptr || ev == nullptr) {
        return WX_ERR_ARGS;
    }

    return wx::guarded([&] { return parse(wx::view(xml), a, ev, true); });
}

wx_status_t
wx::event_parse_with_libxml2(wx_span_t xml, const wx_allocator_t *a,
    wx_event_t *ev)
{
    return wx::guarded([&] { return parse(wx::view(xml), a, ev, false); });
}
