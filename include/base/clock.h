/* Time in seconds as doubles: monotonic for deadlines, wall clock for eta/expires. */
#ifndef CWORKER_CLOCK_H
#define CWORKER_CLOCK_H

double clock_monotonic(void);
double clock_wall(void);

#endif
