// The functions are inline in urun_curl.h.
