/* The enricher's (operation, is_error) for _heads.c: a memo in front of Enricher.derive.
 *
 * Enricher.derive's answer for given inputs never changes once given (its
 * per-service operation sets only grow), so answers are memoised by their inputs.
 * The key holds only the inputs derive actually reads, mirroring
 * pipeline.enrich.operation_for and http_server_error (the equivalence tests and
 * the fuzz test hold the two together): a server span's url.path beside its
 * http.route, or a client span's name beside its url.path, does not split entries.
 * Keeping an input that is not read is always safe; dropping one that is would not
 * be, so every rule below only drops what the Python code provably ignores.
 */
#ifndef SPANSTREAM_DERIVE_H
#define SPANSTREAM_DERIVE_H

#include "_span.h"

/* Indexes into RELEVANT (_values.h). */
enum {
    HTTP_REQUEST_METHOD, HTTP_METHOD, HTTP_ROUTE, URL_PATH, HTTP_TARGET, URL_FULL, HTTP_URL,
    RPC_SYSTEM, RPC_SERVICE, RPC_METHOD, DB_SYSTEM_NAME, DB_SYSTEM, DB_OPERATION_NAME,
    DB_OPERATION, HTTP_RESPONSE_STATUS_CODE, HTTP_STATUS_CODE
};
enum { KIND_SERVER = 2, STATUS_ERROR = 2 };

static inline int
truthy(PyObject *v)
{
    return v != NULL && PyUnicode_GET_LENGTH(v) > 0;
}

/* `a or b` of two attributes: the slot whose value Python ends up reading. */
static inline int
either(PyObject *const *v, int a, int b)
{
    return truthy(v[a]) ? a : b;
}

/* Copy into key[] the values derive reads; returns whether it reads the span name. */
static int
narrow(PyObject *const *v, int32_t kind, int32_t status, PyObject **key)
{
    int reads_name = 1;
    memset(key, 0, N_RELEVANT * sizeof *key);
    int method = either(v, HTTP_REQUEST_METHOD, HTTP_METHOD);
    key[method] = v[method];
    if (truthy(v[method])) { /* HTTP: route, else path, else the path of the full URL */
        key[HTTP_ROUTE] = v[HTTP_ROUTE];
        int path = either(v, URL_PATH, HTTP_TARGET);
        if (truthy(v[HTTP_ROUTE])) {
            reads_name = 0;
        }
        else if (truthy(v[path])) {
            key[path] = v[path];
            reads_name = 0;
        }
        else { /* the name is read when url_path(full) is "": it stays in the key */
            key[path] = v[path];
            int full = either(v, URL_FULL, HTTP_URL);
            key[full] = v[full];
        }
    }
    else if (v[RPC_SYSTEM] != NULL) { /* presence, not truth: "rpc.system" in attributes */
        key[RPC_SYSTEM] = v[RPC_SYSTEM];
        key[RPC_SERVICE] = v[RPC_SERVICE];
        key[RPC_METHOD] = v[RPC_METHOD];
    }
    else if (v[DB_SYSTEM_NAME] != NULL || v[DB_SYSTEM] != NULL) {
        key[DB_SYSTEM_NAME] = v[DB_SYSTEM_NAME];
        key[DB_SYSTEM] = v[DB_SYSTEM];
        int op = either(v, DB_OPERATION_NAME, DB_OPERATION);
        key[op] = v[op];
    }
    if (kind == KIND_SERVER && status != STATUS_ERROR) { /* only then is the HTTP status read */
        int code = either(v, HTTP_RESPONSE_STATUS_CODE, HTTP_STATUS_CODE);
        key[code] = v[code];
    }
    return reads_name;
}

/* (operation, is_error) for one span (new reference): from `memo`, else from the
 * `callback` (Enricher.derive with every relevant attribute), then memoised. */
static PyObject *
derive(PyObject *memo, Py_ssize_t memo_limit, PyObject *callback, PyObject *service,
       PyObject *name, int32_t kind, int32_t status, PyObject *const *relevant)
{
    PyObject *read[N_RELEVANT], *result = NULL, *attrs = NULL;
    int reads_name = narrow(relevant, kind, status, read);
    PyObject *key = PyTuple_New(4 + N_RELEVANT);
    if (key == NULL)
        return NULL;
    PyTuple_SET_ITEM(key, 0, Py_NewRef(service));
    PyTuple_SET_ITEM(key, 1, Py_NewRef(reads_name ? name : Py_None));
    PyTuple_SET_ITEM(key, 2, PyLong_FromLong(kind));
    PyTuple_SET_ITEM(key, 3, PyLong_FromLong(status));
    for (int i = 0; i < N_RELEVANT; i++)
        PyTuple_SET_ITEM(key, 4 + i, Py_NewRef(read[i] ? read[i] : Py_None));
    if (PyTuple_GET_ITEM(key, 2) == NULL || PyTuple_GET_ITEM(key, 3) == NULL)
        goto done;
    result = PyDict_GetItemWithError(memo, key);
    if (result != NULL || PyErr_Occurred()) {
        Py_XINCREF(result);
        goto done;
    }
    if ((attrs = PyDict_New()) == NULL)
        goto done;
    for (int i = 0; i < N_RELEVANT; i++)
        if (relevant[i] && PyDict_SetItem(attrs, relevant_names[i], relevant[i]) < 0)
            goto done;
    result = PyObject_CallFunction(callback, "OOiiO", service, name, kind, status, attrs);
    if (result == NULL)
        goto done;
    /* Bounded: names or paths full of ids could otherwise grow it without end. */
    if (PyDict_GET_SIZE(memo) >= memo_limit)
        PyDict_Clear(memo);
    if (PyDict_SetItem(memo, key, result) < 0)
        Py_CLEAR(result);
done:
    Py_DECREF(key);
    Py_XDECREF(attrs);
    return result;
}

#endif
