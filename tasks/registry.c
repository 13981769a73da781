/*
 * registry.c - the one list of tasks.
 */
#include "task.h"

#include <string.h>

extern const struct task_ops fidelity_task;
extern const struct task_ops speed_task;
extern const struct task_ops causality_task;
extern const struct task_ops decode_task;
extern const struct task_ops passkey_task;
extern const struct task_ops recall_task;

static const struct task_ops *const tasks[] = {
	&fidelity_task,
	&speed_task,
	&causality_task,
	&decode_task,
	&passkey_task,
	&recall_task,
};

int task_count(void)
{
	return (int)(sizeof(tasks) / sizeof(tasks[0]));
}

const struct task_ops *task_at(int i)
{
	return tasks[i];
}

const struct task_ops *task_find(const char *name)
{
	for (int i = 0; i < task_count(); i++)
		if (!strcmp(tasks[i]->name, name))
			return tasks[i];
	return NULL;
}

int task_regime_index(const struct task_ops *t, const char *regime)
{
	for (int i = 0; t->regimes && t->regimes[i]; i++)
		if (!strcmp(t->regimes[i], regime))
			return i;
	return -1;
}
