/* Unit tests for conf_type detection and provenance from archive paths (CONTRACT 1.6). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingest/provenance.h"

#include <stdio.h>
#include <string.h>

static void test_conf_type_names(void **state)
{
    (void)state;
    assert_string_equal(conf_type_name(CONF_TYPE_INPUTS), "inputs");
    assert_string_equal(conf_type_name(CONF_TYPE_PROPS), "props");
    assert_string_equal(conf_type_name(CONF_TYPE_TRANSFORMS), "transforms");
    assert_string_equal(conf_type_name(CONF_TYPE_INDEXES), "indexes");
    assert_string_equal(conf_type_name(CONF_TYPE_OUTPUTS), "outputs");
    assert_string_equal(conf_type_name(CONF_TYPE_SERVERCLASSES), "serverclasses");
    assert_string_equal(conf_type_name(CONF_TYPE_OTHER), "other");
    assert_string_equal(conf_type_name((enum conf_type)99), "other");
}

static void test_conf_type_from_path(void **state)
{
    (void)state;
    assert_int_equal(conf_type_from_path("inputs.conf"), CONF_TYPE_INPUTS);
    assert_int_equal(conf_type_from_path("etc/apps/search/local/inputs.conf"), CONF_TYPE_INPUTS);
    assert_int_equal(conf_type_from_path("a/props.conf"), CONF_TYPE_PROPS);
    assert_int_equal(conf_type_from_path("a/transforms.conf"), CONF_TYPE_TRANSFORMS);
    assert_int_equal(conf_type_from_path("a/indexes.conf"), CONF_TYPE_INDEXES);
    assert_int_equal(conf_type_from_path("a/outputs.conf"), CONF_TYPE_OUTPUTS);
    assert_int_equal(conf_type_from_path("etc/system/local/serverclass.conf"),
                     CONF_TYPE_SERVERCLASSES);
    assert_int_equal(conf_type_from_path("serverclasses.conf"), CONF_TYPE_OTHER);
    assert_int_equal(conf_type_from_path("a/app.conf"), CONF_TYPE_OTHER);
    assert_int_equal(conf_type_from_path("a/inputs.conf.bak"), CONF_TYPE_OTHER);
    assert_int_equal(conf_type_from_path("a/myinputs.conf"), CONF_TYPE_OTHER);
    assert_int_equal(conf_type_from_path("a/inputs.conf/props.conf"), CONF_TYPE_PROPS);
    assert_int_equal(conf_type_from_path("a/Inputs.conf"), CONF_TYPE_OTHER); /* Splunk: exact */
    assert_int_equal(conf_type_from_path("inputs/app.conf"), CONF_TYPE_OTHER);
    assert_int_equal(conf_type_from_path(""), CONF_TYPE_OTHER);
}

static void expect(const char *path, const char *app, const char *scope, const char *layer)
{
    struct provenance pv;
    memset(&pv, 'X', sizeof pv); /* every field must be written */
    provenance_from_path(path, &pv);
    if (strcmp(pv.app, app) != 0 || strcmp(pv.scope, scope) != 0 || strcmp(pv.layer, layer) != 0)
        fail_msg("%s: got app=\"%s\" scope=\"%s\" layer=\"%s\", want \"%s\" \"%s\" \"%s\"", path,
                 pv.app, pv.scope, pv.layer, app, scope, layer);
    assert_false(pv.app_truncated);
}

static void test_provenance_apps(void **state)
{
    (void)state;
    expect("etc/apps/search/local/inputs.conf", "search", "local", "app");
    expect("etc/apps/Splunk_TA_nix/default/props.conf", "Splunk_TA_nix", "default", "app");
    expect("splunk/etc/apps/search/default/props.conf", "search", "default", "app");
    expect("opt/splunk/etc/apps/x/local/outputs.conf", "x", "local", "app");
    expect("apps/search/local/inputs.conf", "search", "local", "app");
    expect("etc/deployment-apps/x/local/outputs.conf", "x", "local", "app");
    expect("etc/master-apps/_cluster/default/indexes.conf", "_cluster", "default", "app");
    expect("etc/manager-apps/_cluster/local/indexes.conf", "_cluster", "local", "app");
    expect("etc/slave-apps/_cluster/local/indexes.conf", "_cluster", "local", "app");
    expect("etc/peer-apps/myidx/default/indexes.conf", "myidx", "default", "app");
    expect("etc/shcluster/apps/es_app/local/savedsearches.conf", "es_app", "local", "app");
    /* An app literally named "system" is still an app. */
    expect("etc/apps/system/local/inputs.conf", "system", "local", "app");
}

static void test_provenance_system_and_users(void **state)
{
    (void)state;
    expect("etc/system/local/inputs.conf", "", "local", "system");
    expect("splunk/etc/system/default/props.conf", "", "default", "system");
    expect("system/default/props.conf", "", "default", "system");
    expect("etc/users/admin/search/local/props.conf", "search", "local", "user");
    expect("splunk/etc/users/bob/my_app/default/macros.conf", "my_app", "default", "user");
}

static void test_provenance_bundles(void **state)
{
    (void)state;
    expect("Splunk_TA_nix/default/inputs.conf", "Splunk_TA_nix", "default", "app");
    expect("Splunk_TA_paloalto/local/props.conf", "Splunk_TA_paloalto", "local", "app");
    expect("Splunk_TA_nix//default/inputs.conf", "Splunk_TA_nix", "default", "app");
}

static void test_provenance_none(void **state)
{
    (void)state;
    expect("inputs.conf", "", "", "");
    expect("", "", "", "");
    expect("default/inputs.conf", "", "", "");
    expect("etc/default/inputs.conf", "", "", "");
    expect("etc/apps/search/inputs.conf", "", "", "");
    expect("etc/apps/search/bin/inputs.conf", "", "", "");
    expect("etc/apps/search/default/data/ui/x.conf", "", "", "");
    expect("backup/Splunk_TA_nix/default/inputs.conf", "", "", ""); /* not a top folder */
    expect("etc/apps/search/Local/inputs.conf", "", "", "");        /* case matters */
    expect("etc/users/admin/local/props.conf", "", "", "");         /* no app folder */
}

static void test_provenance_long_app(void **state)
{
    (void)state;
    char path[1024] = "etc/apps/";
    /* 300 two-byte characters: cut to 127 characters (254 bytes, the buffer's limit),
     * never in the middle of one. */
    for (int i = 0; i < 300; i++)
        strcat(path, "\xC3\xA9");
    strcat(path, "/local/inputs.conf");
    struct provenance pv;
    provenance_from_path(path, &pv);
    assert_true(pv.app_truncated);
    assert_int_equal(strlen(pv.app), 254);
    assert_string_equal(pv.scope, "local");
    assert_string_equal(pv.layer, "app");

    /* Exactly 255 ASCII characters fit untruncated. */
    char app[256];
    memset(app, 'a', 255);
    app[255] = '\0';
    snprintf(path, sizeof path, "etc/apps/%s/default/props.conf", app);
    provenance_from_path(path, &pv);
    assert_false(pv.app_truncated);
    assert_string_equal(pv.app, app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_type_names),
        cmocka_unit_test(test_conf_type_from_path),
        cmocka_unit_test(test_provenance_apps),
        cmocka_unit_test(test_provenance_system_and_users),
        cmocka_unit_test(test_provenance_bundles),
        cmocka_unit_test(test_provenance_none),
        cmocka_unit_test(test_provenance_long_app),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
