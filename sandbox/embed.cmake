# Turns the runner script into a C string: cmake -DIN=script -DOUT=file.c -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN}; do not edit */\n#include <stddef.h>\nconst char cj_jailed_code[] = {${bytes} 0x00};\nconst size_t cj_jailed_code_len = sizeof cj_jailed_code - 1;\n")
