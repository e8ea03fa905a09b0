#ifndef QUANTRAC_CCURL_SHIM_H
#define QUANTRAC_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them.
   These typed wrappers are the only way the Curl module sets options. */
static inline CURLcode quantrac_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode quantrac_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode quantrac_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode quantrac_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode quantrac_curl_setopt_offset(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }

typedef size_t (*quantrac_curl_data_callback)(char *buffer, size_t size, size_t nitems, void *userdata);
static inline CURLcode quantrac_curl_setopt_data_callback(CURL *h, CURLoption o, quantrac_curl_data_callback v) { return curl_easy_setopt(h, o, v); }

static inline CURLcode quantrac_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
#endif
