// libFuzzer target: safe mode.  The first byte picks how the rest is used:
//   even: the Encrypt text as WeChat would send it (signature check, then
//         decrypt);
//   odd:  a plaintext frame, encrypted here with OpenSSL so that the
//         fuzzer steers what the core finds after decrypting (padding,
//         msg_len, AppID).

#include <cstdlib>
#include <string>
#include <vector>

#include <openssl/evp.h>

#include "fuzz_alloc.h"

namespace {

const unsigned char *
sample_key()
{
    static unsigned char key[WX_AES_KEY_LEN];
    static bool done = false;
    static const char enc[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    if (!done) {
        wx_aes_key_decode({reinterpret_cast<const unsigned char *>(enc),
                           sizeof(enc) - 1}, key);
        done = true;
    }

    return key;
}

std::string
encrypt_frame(const unsigned char *data, size_t size)
{
    std::vector<unsigned char> plain(data, data + size);
    plain.resize((size + 15) / 16 * 16 + (size == 0 ? 16 : 0), 0);

    std::vector<unsigned char> cipher(plain.size() + 16);
    int n = 0, tail = 0;
    const unsigned char *key = sample_key();

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), nullptr, key, key);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    EVP_EncryptUpdate(ctx, cipher.data(), &n, plain.data(),
                      static_cast<int>(plain.size()));
    EVP_EncryptFinal_ex(ctx, cipher.data() + n, &tail);
    EVP_CIPHER_CTX_free(ctx);

    std::string b64(4 * ((n + tail + 2) / 3) + 1, '\0');
    int m = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(b64.data()),
                            cipher.data(), n + tail);
    b64.resize(static_cast<size_t>(m));
    return b64;
}

wx_span_t
span(const std::string &s)
{
    return {reinterpret_cast<const unsigned char *>(s.data()), s.size()};
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    fuzz_arena arena;
    const wx_allocator_t *a = arena.get();
    std::string encrypt = (data[0] & 1)
        ? encrypt_frame(data + 1, size - 1)
        : std::string(reinterpret_cast<const char *>(data + 1), size - 1);

    std::string token = "spamtest", ts = "1409735669", nonce = "1320562132";
    wx_span_t fields[] = {span(token), span(ts), span(nonce), span(encrypt)};
    char sig[WX_SIGNATURE_LEN];

    wx_signature_compute(fields, 4, sig);
    if (wx_signature_verify(fields, 4, {reinterpret_cast<unsigned char *>(sig),
                                        sizeof(sig)}) != WX_OK)
    {
        std::abort();
    }

    wx_span_t msg;
    std::string appid = "wx2c2769f8efd9abc2";

    if (wx_aes_decrypt(sample_key(), span(encrypt), span(appid), a, &msg)
        == WX_OK)
    {
        wx_event_t ev;
        wx_event_parse(msg, a, &ev);
    }

    return 0;
}
