#ifndef QUANTRAC_CSERIALPORT_SHIM_H
#define QUANTRAC_CSERIALPORT_SHIM_H
#include <libserialport.h>
#endif
