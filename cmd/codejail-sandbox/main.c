/* codejail-sandbox: the helper that makes sandboxes; started by the engine
 * (codejaild, codejail) with its socket as fd 3. Not meant to be run by hand. */
#include <stdio.h>
#include <sys/stat.h>

#include "zygote.h"

int main(int argc, char **argv)
{
    struct stat st;
    if (argc != 1 || fstat(3, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "%s: started by codejail and codejaild only (expects a socket on fd 3)\n",
                argv[0]);
        return 2;
    }
    return cj_zygote_main(3);
}
