#ifndef QUANTRAC_CMODBUS_SHIM_H
#define QUANTRAC_CMODBUS_SHIM_H
#include <modbus/modbus.h>
#include <errno.h>

/* errno is a macro; expose it as a function so the wrapper can read it right after a call. */
static inline int quantrac_modbus_errno(void) { return errno; }
static inline void quantrac_modbus_clear_errno(void) { errno = 0; }
/* libmodbus error codes are macros built from an enum plus MODBUS_ENOBASE. */
static inline int quantrac_modbus_enobase(void) { return MODBUS_ENOBASE; }
static inline int quantrac_modbus_emdata(void) { return EMBMDATA; }
static inline int quantrac_modbus_ebadcrc(void) { return EMBBADCRC; }
static inline int quantrac_modbus_ebaddata(void) { return EMBBADDATA; }
static inline int quantrac_modbus_ebadexc(void) { return EMBBADEXC; }
static inline int quantrac_modbus_ebadslave(void) { return EMBBADSLAVE; }
static inline int quantrac_modbus_tcp_max_adu_length(void) { return MODBUS_TCP_MAX_ADU_LENGTH; }
#endif
