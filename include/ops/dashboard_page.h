/* The operator's dashboard page (GET / and GET /runs/<id>): worker/ops/assets/dashboard.html,
 * compiled into the binary by the Makefile (xxd -i into $(BUILD)/gen/dashboard_page.c), so
 * the worker serves it with no file at run time and nothing from elsewhere. NUL-terminated;
 * dashboard_html_len excludes the NUL. */
#ifndef CWORKER_DASHBOARD_PAGE_H
#define CWORKER_DASHBOARD_PAGE_H

extern const unsigned char dashboard_html[];
extern const unsigned int dashboard_html_len;

#endif
