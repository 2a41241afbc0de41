/* The enricher's (operation, is_error, series service) for _heads.c: a memo in front
 * of Enricher.derive and Enricher.series_service.
 *
 * Enricher.derive's answer for given inputs never changes once given (its
 * per-service operation sets only grow, an admitted service stays admitted and a
 * full services bound stays full), so answers are memoised by their inputs.
 * The key holds only the inputs derive actually reads, mirroring
 * pipeline.enrich.operation_for and http_server_error, which read only the attributes
 * pipeline.enrich.DERIVE_ATTRIBUTES declares (the equivalence tests and
 * the fuzz test hold the two together): a server span's url.path beside its
 * http.route, or a client span's name beside its url.path, does not split entries.
 * Keeping an input that is not read is always safe; dropping one that is would not
 * be, so every rule below only drops what the Python code provably ignores.
 */
#ifndef SPANSTREAM_DERIVE_H
#define SPANSTREAM_DERIVE_H

#include "_span.h"

/* Indexes into pipeline.enrich.DERIVE_ATTRIBUTES, as configure() (_values.h) got them. */
enum {
    HTTP_REQUEST_METHOD, HTTP_METHOD, HTTP_ROUTE, URL_PATH, HTTP_TARGET, URL_FULL, HTTP_URL,
    RPC_SYSTEM, RPC_SERVICE, RPC_METHOD, DB_SYSTEM_NAME, DB_SYSTEM, DB_OPERATION_NAME,
    DB_OPERATION, HTTP_RESPONSE_STATUS_CODE, HTTP_STATUS_CODE
};
enum { KIND_SERVER = 2, STATUS_ERROR = 2 };

static inline int
truthy(const Relevant *v)
{
    return v->present && v->text.n > 0;
}

/* `a or b` of two attributes: the slot whose value Python ends up reading. */
static inline int
either(const Relevant *v, int a, int b)
{
    return truthy(&v[a]) ? a : b;
}

/* Mark in read[] the values derive reads; returns whether it reads the span name. */
static int
narrow(const Relevant *v, int32_t kind, int32_t status, int *read)
{
    int reads_name = 1;
    memset(read, 0, N_RELEVANT * sizeof *read);
    int method = either(v, HTTP_REQUEST_METHOD, HTTP_METHOD);
    read[method] = 1;
    if (truthy(&v[method])) { /* HTTP: route, else path, else the path of the full URL */
        read[HTTP_ROUTE] = 1;
        int path = either(v, URL_PATH, HTTP_TARGET);
        if (truthy(&v[HTTP_ROUTE])) {
            reads_name = 0;
        }
        else if (truthy(&v[path])) {
            read[path] = 1;
            reads_name = 0;
        }
        else { /* the name is read when url_path(full) is "": it stays in the key */
            read[path] = 1;
            read[either(v, URL_FULL, HTTP_URL)] = 1;
        }
    }
    else if (v[RPC_SYSTEM].present) { /* presence, not truth: "rpc.system" in attributes */
        read[RPC_SYSTEM] = read[RPC_SERVICE] = read[RPC_METHOD] = 1;
    }
    else if (v[DB_SYSTEM_NAME].present || v[DB_SYSTEM].present) {
        read[DB_SYSTEM_NAME] = read[DB_SYSTEM] = 1;
        read[either(v, DB_OPERATION_NAME, DB_OPERATION)] = 1;
    }
    if (kind == KIND_SERVER && status != STATUS_ERROR) /* only then is the HTTP status read */
        read[either(v, HTTP_RESPONSE_STATUS_CODE, HTTP_STATUS_CODE)] = 1;
    return reads_name;
}

/* Append a length-prefixed field to a key under construction. */
static inline char *
put_text(char *out, const void *p, Py_ssize_t n)
{
    uint32_t length = (uint32_t)n;
    memcpy(out, &length, 4);
    memcpy(out + 4, p, n);
    return out + 4 + n;
}

/* The memo key: kind, status, service, the name if read, each read value (bytes). */
static PyObject *
memo_key(PyObject *service, Slice name, int32_t kind, int32_t status, const Relevant *v)
{
    int read[N_RELEVANT];
    int reads_name = narrow(v, kind, status, read);
    Py_ssize_t service_n;
    const char *service_p = PyUnicode_AsUTF8AndSize(service, &service_n);
    if (service_p == NULL)
        return NULL;
    Py_ssize_t size = 8 + 4 + service_n + 5 + (reads_name ? name.n : 0);
    for (int i = 0; i < N_RELEVANT; i++)
        size += 1 + (read[i] && v[i].present ? 4 + v[i].text.n : 0);
    PyObject *key = PyBytes_FromStringAndSize(NULL, size);
    if (key == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(key);
    memcpy(out, &kind, 4);
    memcpy(out + 4, &status, 4);
    out = put_text(out + 8, service_p, service_n);
    *out++ = (char)reads_name;
    out = put_text(out, name.p, reads_name ? name.n : 0);
    for (int i = 0; i < N_RELEVANT; i++) {
        int kept = read[i] && v[i].present;
        *out++ = (char)kept; /* absent and unread look alike: neither is looked at */
        if (kept)
            out = put_text(out, v[i].text.p, v[i].text.n);
    }
    return key;
}

/* Enricher.derive's inputs as Python values: the relevant attributes present. */
static PyObject *
relevant_dict(const Relevant *v)
{
    PyObject *attrs = PyDict_New();
    for (int i = 0; attrs != NULL && i < N_RELEVANT; i++) {
        if (!v[i].present)
            continue;
        PyObject *text = v[i].object ? Py_NewRef(v[i].object) : utf8_text(v[i].text);
        if (text == NULL || PyDict_SetItem(attrs, relevant_names[i], text) < 0)
            Py_CLEAR(attrs);
        Py_XDECREF(text);
    }
    return attrs;
}

/* (operation, is_error, series service) for one span (new reference): from `memo`,
 * else from the `callback` (Enricher.derive with every relevant attribute), then
 * memoised. */
static PyObject *
derive(PyObject *memo, Py_ssize_t memo_limit, PyObject *callback, PyObject *service,
       Slice name, int32_t kind, int32_t status, const Relevant *relevant)
{
    PyObject *key = memo_key(service, name, kind, status, relevant), *result = NULL;
    if (key == NULL)
        return NULL;
    result = PyDict_GetItemWithError(memo, key);
    if (result != NULL || PyErr_Occurred()) {
        Py_XINCREF(result);
        Py_DECREF(key);
        return result;
    }
    PyObject *attrs = relevant_dict(relevant), *name_text = utf8_text(name);
    if (attrs != NULL && name_text != NULL)
        result = PyObject_CallFunction(callback, "OOiiO", service, name_text, kind, status,
                                       attrs);
    /* Bounded: names or paths full of ids could otherwise grow it without end. */
    if (result != NULL && PyDict_GET_SIZE(memo) >= memo_limit)
        PyDict_Clear(memo);
    if (result != NULL && PyDict_SetItem(memo, key, result) < 0)
        Py_CLEAR(result);
    Py_DECREF(key);
    Py_XDECREF(attrs);
    Py_XDECREF(name_text);
    return result;
}

#endif
