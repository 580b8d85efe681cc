/* The BPF target has no architecture directory of its own; the generic
 * definitions are the right ones for a 64-bit virtual CPU. */
#pragma once
#include <asm-generic/bitsperlong.h>
