%module(package="openmmcgml") cgmlswig

%import(module="openmm") "swig/OpenMMSwigHeaders.i"
%include <std_string.i>
%include <typemaps.i>

%{
#include "CGSchNetForce.h"
#include "DiscriminatorBiasForce.h"
#include "internal/CGMLPluginUtilities.h"
#include "OpenMM.h"
#include "OpenMMAmoeba.h"
#include "OpenMMDrude.h"
#include "openmm/RPMDIntegrator.h"
#include "openmm/RPMDMonteCarloBarostat.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/XmlSerializer.h"
#include <cmath>
#include <map>
#include <sstream>
#include <typeinfo>
#include <vector>

// Raise C++ exceptions as openmm.OpenMMException, the class OpenMM's own bindings raise.
static void cgmlRaiseOpenMMException(const char* message) {
    PyObject* module = PyImport_ImportModule("openmm");
    PyObject* type = (module ? PyObject_GetAttrString(module, "OpenMMException") : NULL);
    if (type == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError, message);
    }
    else
        PyErr_SetString(type, message);
    Py_XDECREF(type);
    Py_XDECREF(module);
}

template <class T>
static bool cgmlSequenceToVector(PyObject* input, std::vector<T>& output, const char* argument) {
    PyObject* sequence = PySequence_Fast(input, "");
    if (sequence == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a sequence of numbers", argument);
        return false;
    }
    Py_ssize_t size = PySequence_Fast_GET_SIZE(sequence);
    output.resize(size);
    PyObject** items = PySequence_Fast_ITEMS(sequence);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (std::is_floating_point<T>::value) {
            double value = PyFloat_AsDouble(items[i]);
            if (value == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "%s: element %zd is not a number", argument, i);
                Py_DECREF(sequence);
                return false;
            }
            output[i] = (T) value;
        }
        else {
            PyObject* index = PyNumber_Index(items[i]);
            long value = (index ? PyLong_AsLong(index) : -1);
            Py_XDECREF(index);
            if (PyErr_Occurred() || value > INT_MAX || value < INT_MIN) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "%s: element %zd is not an integer in the range of a C int", argument, i);
                Py_DECREF(sequence);
                return false;
            }
            output[i] = (T) value;
        }
    }
    Py_DECREF(sequence);
    return true;
}

static PyObject* cgmlStringMapToDict(const std::map<std::string, std::string>& values) {
    PyObject* dict = PyDict_New();
    for (const auto& item : values) {
        PyObject* value = PyUnicode_FromString(item.second.c_str());
        PyDict_SetItemString(dict, item.first.c_str(), value);
        Py_DECREF(value);
    }
    return dict;
}

template <class T>
static PyObject* cgmlVectorToTuple(const std::vector<T>& values) {
    PyObject* tuple = PyTuple_New(values.size());
    for (size_t i = 0; i < values.size(); i++)
        PyTuple_SET_ITEM(tuple, i, std::is_floating_point<T>::value ? PyFloat_FromDouble(values[i]) : PyLong_FromLong((long) values[i]));
    return tuple;
}
%}

%exception {
    try {
        $action
    }
    catch (const std::bad_cast&) {
        PyErr_SetString(PyExc_TypeError, "the force is not of the class cast() asks for");
        SWIG_fail;
    }
    catch (const std::exception& e) {
        cgmlRaiseOpenMMException(e.what());
        SWIG_fail;
    }
}

%typemap(in) const std::vector<double>& (std::vector<double> temp) {
    if (!cgmlSequenceToVector($input, temp, "$1_name"))
        SWIG_fail;
    $1 = &temp;
}
%typemap(typecheck, precedence=SWIG_TYPECHECK_DOUBLE_ARRAY) const std::vector<double>& {
    $1 = (PySequence_Check($input) || PyObject_HasAttrString($input, "__array__")) ? 1 : 0;
}
%typemap(in) const std::vector<int>& (std::vector<int> temp) {
    if (!cgmlSequenceToVector($input, temp, "$1_name"))
        SWIG_fail;
    $1 = &temp;
}
%typemap(typecheck, precedence=SWIG_TYPECHECK_INT32_ARRAY) const std::vector<int>& {
    $1 = (PySequence_Check($input) || PyObject_HasAttrString($input, "__array__")) ? 1 : 0;
}
%typemap(out) std::vector<double> {
    $result = cgmlVectorToTuple($1);
}
%typemap(out) std::vector<int> {
    $result = cgmlVectorToTuple($1);
}
// Properties come back as a dict of str.
%typemap(out) const std::map<std::string, std::string>& {
    $result = cgmlStringMapToDict(*$1);
}
%typemap(out) std::map<std::string, std::string> {
    $result = cgmlStringMapToDict($1);
}
%apply int& OUTPUT { int& particle1, int& particle2 };

#define OPENMM_EXPORT_CGML
%ignore OpenMMCGML::CGSchNetForce::validate;
%ignore OpenMMCGML::DiscriminatorBiasForce::validate;

%include "CGSchNetForce.h"
%include "DiscriminatorBiasForce.h"
%include "internal/CGMLPluginUtilities.h"

%extend OpenMMCGML::CGSchNetForce {
    static OpenMMCGML::CGSchNetForce& _cast(OpenMM::Force& force) {
        return dynamic_cast<OpenMMCGML::CGSchNetForce&>(force);
    }
    static bool _isinstance(OpenMM::Force& force) {
        return dynamic_cast<OpenMMCGML::CGSchNetForce*>(&force) != NULL;
    }
    %newobject _fromXml;
    static OpenMMCGML::CGSchNetForce* _fromXml(const std::string& xml) {
        std::stringstream stream(xml);
        OpenMM::Force* force = OpenMM::XmlSerializer::deserialize<OpenMM::Force>(stream);
        OpenMMCGML::CGSchNetForce* typed = dynamic_cast<OpenMMCGML::CGSchNetForce*>(force);
        if (typed == NULL) {
            delete force;
            throw OpenMM::OpenMMException("the XML does not describe a CGSchNetForce");
        }
        return typed;
    }
    %pythoncode %{
    @staticmethod
    def cast(force):
        """Return `force` (for example ``system.getForce(i)``) as a CGSchNetForce.

        Raises TypeError if it is another kind of force.
        """
        typed = CGSchNetForce._cast(force)
        if force.thisown:
            # A force that owns its C++ object (for example one just deserialized) hands the
            # ownership to the typed view, so that the view can be added to a System; the two
            # keep each other alive, so neither is left pointing at a deleted object.
            force.thisown = False
            typed.thisown = True
            force._typedView = typed
        typed._castSource = force
        return typed

    @staticmethod
    def isinstance(force):
        """Whether `force` is a CGSchNetForce."""
        return CGSchNetForce._isinstance(force)

    def __getstate__(self):
        import openmm
        return openmm.XmlSerializer.serialize(self)

    def __setstate__(self, state):
        self.this = CGSchNetForce._fromXml(state).this

    def __copy__(self):
        import openmm
        return CGSchNetForce._fromXml(openmm.XmlSerializer.serialize(self))

    def __deepcopy__(self, memo):
        return self.__copy__()
    %}
}

%extend OpenMMCGML::DiscriminatorBiasForce {
    static OpenMMCGML::DiscriminatorBiasForce& _cast(OpenMM::Force& force) {
        return dynamic_cast<OpenMMCGML::DiscriminatorBiasForce&>(force);
    }
    static bool _isinstance(OpenMM::Force& force) {
        return dynamic_cast<OpenMMCGML::DiscriminatorBiasForce*>(&force) != NULL;
    }
    %newobject _fromXml;
    static OpenMMCGML::DiscriminatorBiasForce* _fromXml(const std::string& xml) {
        std::stringstream stream(xml);
        OpenMM::Force* force = OpenMM::XmlSerializer::deserialize<OpenMM::Force>(stream);
        OpenMMCGML::DiscriminatorBiasForce* typed = dynamic_cast<OpenMMCGML::DiscriminatorBiasForce*>(force);
        if (typed == NULL) {
            delete force;
            throw OpenMM::OpenMMException("the XML does not describe a DiscriminatorBiasForce");
        }
        return typed;
    }
    %pythoncode %{
    @staticmethod
    def cast(force):
        """Return `force` (for example ``system.getForce(i)``) as a DiscriminatorBiasForce.

        Raises TypeError if it is another kind of force.
        """
        typed = DiscriminatorBiasForce._cast(force)
        if force.thisown:
            # A force that owns its C++ object (for example one just deserialized) hands the
            # ownership to the typed view, so that the view can be added to a System; the two
            # keep each other alive, so neither is left pointing at a deleted object.
            force.thisown = False
            typed.thisown = True
            force._typedView = typed
        typed._castSource = force
        return typed

    @staticmethod
    def isinstance(force):
        """Whether `force` is a DiscriminatorBiasForce."""
        return DiscriminatorBiasForce._isinstance(force)

    def __getstate__(self):
        import openmm
        return openmm.XmlSerializer.serialize(self)

    def __setstate__(self, state):
        self.this = DiscriminatorBiasForce._fromXml(state).this

    def __copy__(self):
        import openmm
        return DiscriminatorBiasForce._fromXml(openmm.XmlSerializer.serialize(self))

    def __deepcopy__(self, memo):
        return self.__copy__()
    %}
}
