// SPDX-License-Identifier: GPL-2.0-only
/* The desired state (model.h): only freeing lives here; config.c builds it. */
#include <stdlib.h>
#include <string.h>

#include "model.h"

void ferry_model__free(struct ferry_model *model)
{
	if (!model)
		return;
	for (size_t s = 0; s < model->nservices; s++) {
		struct ferry_model_service *svc = &model->services[s];

		for (size_t p = 0; p < svc->npredictors; p++)
			free(svc->predictors[p].backends);
		free(svc->predictors);
	}
	free(model->services);
	memset(model, 0, sizeof(*model));
}
