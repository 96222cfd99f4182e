/* libFuzzer target: kombu_json_unwrap over any JSON text, parsed as a task body is
 * (json-c with UTF-8 validation; the tokener's depth above kombu_json's own bound so the
 * unwrapper's limit is reached too). */
#include "celery/kombu_json.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_tokener *tok = json_tokener_new_ex(100);
    json_object *j;
    struct cw_error err = {0};

    if (tok == NULL)
        abort();
    if (size > (1u << 20)) {
        json_tokener_free(tok);
        return 0;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    j = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    json_tokener_free(tok);
    if (j == NULL)
        return 0;
    if (kombu_json_unwrap(&j, &err) == 0)
        (void)json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
    json_object_put(j);
    return 0;
}
