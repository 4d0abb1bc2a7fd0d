// libcurl for urun-transfer, the process that talks to registries.
// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot
// call: these wrappers give each argument type its own function.
#ifndef URUN_CURL_H
#define URUN_CURL_H
#include <curl/curl.h>

static inline CURLcode urun_curl_set_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode urun_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode urun_curl_set_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode urun_curl_set_blob(CURL *handle, CURLoption option, const void *data, size_t length) {
    struct curl_blob blob = {(void *)data, length, CURL_BLOB_COPY};
    return curl_easy_setopt(handle, option, &blob);
}

typedef size_t (*urun_curl_data_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode urun_curl_set_callback(CURL *handle, CURLoption option, urun_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

static inline long urun_curl_info_long(CURL *handle, CURLINFO info) {
    long value = 0;
    curl_easy_getinfo(handle, info, &value);
    return value;
}
static inline void *urun_curl_info_pointer(CURL *handle, CURLINFO info) {
    void *value = 0;
    curl_easy_getinfo(handle, info, &value);
    return value;
}
#endif
