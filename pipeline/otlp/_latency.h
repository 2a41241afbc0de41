/* The latency policy's grouping for _heads.c: a trace's spans by operation.
 *
 * latency_groups() is pipeline.sampling.latency.latency_groups: each (service,
 * operation) of the heads with its durations in span order, the groups in the order
 * of their last span, so that LatencyState.observe_spans learns each group at once
 * and leaves the recency order span-by-span observing would.
 */
#ifndef SPANSTREAM_LATENCY_H
#define SPANSTREAM_LATENCY_H

#include <Python.h>

#include "_sampling.h"

/* {(service, operation): [duration, ...]} for `seq` read from its END: the dict's
 * order is then that of each key's last span, reversed, and each list is reversed.
 * (Reading forwards would need a delete and re-insert per span to get that order.) */
static PyObject *
group_backwards(PyObject *seq)
{
    PyObject *groups = PyDict_New();
    for (Py_ssize_t i = PySequence_Fast_GET_SIZE(seq) - 1; groups != NULL && i >= 0; i--) {
        SpanHead *h = as_head(PySequence_Fast_GET_ITEM(seq, i));
        PyObject *key = h ? PyTuple_Pack(2, h->service_name, h->operation) : NULL;
        PyObject *list = key ? PyDict_GetItemWithError(groups, key) : NULL;
        int rc = key == NULL || PyErr_Occurred() ? -1 : 0;
        if (rc == 0 && list != NULL)
            rc = PyList_Append(list, h->duration_ns);
        else if (rc == 0) {
            list = PyList_New(1);
            rc = list == NULL ? -1 : PyDict_SetItem(groups, key, list);
            if (list != NULL)
                PyList_SET_ITEM(list, 0, Py_NewRef(h->duration_ns));
            Py_XDECREF(list); /* the dict holds it */
        }
        Py_XDECREF(key);
        if (rc < 0)
            Py_CLEAR(groups);
    }
    return groups;
}

/* latency_groups(heads) -> [((service, operation), [duration_ns, ...]), ...] */
static PyObject *
latency_groups(PyObject *Py_UNUSED(module), PyObject *spans)
{
    PyObject *seq = PySequence_Fast(spans, "spans must be a sequence");
    PyObject *groups = seq ? group_backwards(seq) : NULL;
    PyObject *items = groups ? PyDict_Items(groups) : NULL;
    int rc = items == NULL ? -1 : PyList_Reverse(items);
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(items); i++)
        rc = PyList_Reverse(PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1));
    Py_XDECREF(groups);
    Py_XDECREF(seq);
    if (rc < 0)
        Py_CLEAR(items);
    return items;
}

#endif
