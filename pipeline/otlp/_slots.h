/* Reading and writing plain __slots__ members of Python objects without the
 * attribute protocol, for _latency.h.
 *
 * A per-operation histogram update touches a handful of attributes, and the
 * generic lookup cost more than the update. A SlotCache resolves the names once per
 * class: when each is a writable __slots__ member (T_OBJECT_EX) the value is read at
 * its offset, which is what the member descriptor itself does; anything else (a
 * property in a subclass, an unset slot, a class changed since) goes through
 * PyObject_GetAttr/SetAttr, so the result is always that of the attribute protocol.
 */
#ifndef SPANSTREAM_SLOTS_H
#define SPANSTREAM_SLOTS_H

#include <Python.h>
#include <structmember.h>

#define SLOTS_MAX 5

typedef struct {
    const char *text[SLOTS_MAX + 1]; /* NULL-terminated */
    PyObject *names[SLOTS_MAX];      /* interned */
    PyTypeObject *type;              /* the class resolved (owned), or NULL */
    unsigned int version;            /* its tp_version_tag when resolved */
    Py_ssize_t offset[SLOTS_MAX];    /* -1: not a plain slot of that class */
} SlotCache;

static int
slots_init(SlotCache *c)
{
    for (int i = 0; c->text[i] != NULL; i++)
        if ((c->names[i] = PyUnicode_InternFromString(c->text[i])) == NULL)
            return -1;
    return 0;
}

static Py_ssize_t
member_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *d = PyObject_GetAttr((PyObject *)type, name);
    Py_ssize_t off = -1;
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY)
            && PyType_IsSubtype(type, PyDescr_TYPE(d)))
            off = m->offset;
    }
    Py_XDECREF(d);
    PyErr_Clear(); /* a missing name is the attribute protocol's to report */
    return off;
}

/* Makes `c` describe the class of `obj` (a no-op when it already does). */
static void
slots_resolve(SlotCache *c, PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (c->type == type && PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)
        && c->version == type->tp_version_tag)
        return;
    Py_XSETREF(c->type, (PyTypeObject *)Py_NewRef(type));
    for (int i = 0; c->text[i] != NULL; i++)
        c->offset[i] = member_offset(type, c->names[i]);
    /* The lookups give the class a version tag; without one, a later change could
     * not be seen, so nothing is cached. */
    int valid = PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG);
    for (int i = 0; !valid && c->text[i] != NULL; i++)
        c->offset[i] = -1;
    c->version = type->tp_version_tag;
    if (!valid)
        Py_CLEAR(c->type);
}

/* obj.<name i>, a new reference. */
static PyObject *
slot_get(SlotCache *c, PyObject *obj, int i)
{
    slots_resolve(c, obj);
    PyObject *v = c->offset[i] < 0 ? NULL : *(PyObject **)((char *)obj + c->offset[i]);
    return v != NULL ? Py_NewRef(v) : PyObject_GetAttr(obj, c->names[i]);
}

/* obj.<name i> = value; 0 on success. */
static int
slot_set(SlotCache *c, PyObject *obj, int i, PyObject *value)
{
    slots_resolve(c, obj);
    if (c->offset[i] < 0)
        return PyObject_SetAttr(obj, c->names[i], value);
    Py_XSETREF(*(PyObject **)((char *)obj + c->offset[i]), Py_NewRef(value));
    return 0;
}

#endif
