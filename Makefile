# Kube Toolbox: the user's verbs. Symlink this file into your project root: ln -s src/toolbox/Makefile .
# Variables: only='model=a dataset=d lr=0.1'  overwrite=true  yes=1  pod=NAME  file=PATH  keep_going=false
#            name=JOB  follow=1  tail=N  json=1  smoke=1
TOOLBOX := $(patsubst %/,%,$(dir $(realpath $(lastword $(MAKEFILE_LIST)))))
PYTHON ?= python3
LAUNCH := $(PYTHON) $(TOOLBOX)/launch.py
S3 := $(PYTHON) $(TOOLBOX)/s3utils.py
q = '$(subst ','\'',$(1))'
ONLY = $(if $(only),--only $(call q,$(only)))
TRUE = $(filter true 1 yes,$(1))
.DEFAULT_GOAL := help
.PHONY: help local local-dryrun local-first runs print-config job status logs smoke dryrun pod pod-dryrun copy delete delete_job \
	delete_pod clean_jobs upload download remove list find interactive

ifeq ($(realpath $(CURDIR)),$(TOOLBOX))
ifneq ($(filter-out help,$(MAKECMDGOALS)),)
$(error this is the toolbox checkout itself; run make from your project root after 'ln -s src/toolbox/Makefile .')
endif
endif

help: ## list the targets
	@echo "Kube Toolbox targets (run from the project root):"
	@awk -F':.*## ' '/^[a-zA-Z_-]+:.*## /{printf "  make %-14s %s\n", $$1, $$2}' $(TOOLBOX)/Makefile

local: ## run every selected combination here, in sequence (keep_going=false stops at the first failure)
	@$(LAUNCH) local $(ONLY) $(if $(filter false 0 no,$(keep_going)),--stop-on-failure)

local-dryrun: ## print the local commands, run nothing
	@$(LAUNCH) local --dry-run $(ONLY)

local-first: ## run only the first selected combination here
	@$(LAUNCH) local --first $(ONLY)

runs: ## list the selected combinations with their job names
	@$(LAUNCH) runs $(ONLY)

print-config: ## show the merged settings of one combination (index=N)
	@$(LAUNCH) print-config $(ONLY) $(if $(index),--index $(call q,$(index)))

job: ## one Kubernetes Job per combination (overwrite=true replaces running ones; only=failed|missing; smoke=1)
	@$(LAUNCH) job $(ONLY) $(if $(call TRUE,$(overwrite)),--overwrite) $(if $(call TRUE,$(smoke)),--smoke)

status: ## state, age, node, GPU and reason of every cell (json=1 for scripts)
	@$(LAUNCH) status $(ONLY) $(if $(call TRUE,$(json)),--json)

logs: ## logs of one cell: name=JOB or name='model=a dataset=d' (follow=1 streams, tail=N)
	@$(LAUNCH) logs --name $(call q,$(name)) $(if $(call TRUE,$(follow)),--follow) $(if $(tail),--tail $(call q,$(tail)))

smoke: ## run the first combination as a Job with the smoke: overrides, wait, report
	@$(LAUNCH) smoke $(ONLY)

dryrun: ## print every Job manifest, contact no cluster (also written to build/jobs.yaml)
	@$(LAUNCH) dryrun $(ONLY)

pod: ## start the interactive pod (pod=NAME to name it)
	@$(LAUNCH) pod $(if $(pod),--name $(call q,$(pod)))

pod-dryrun: ## print the interactive pod manifest, contact no cluster
	@$(LAUNCH) pod --dry-run $(if $(pod),--name $(call q,$(pod)))

copy: ## copy the file: section into a running pod (pod=NAME)
	@$(LAUNCH) copy --pod $(call q,$(pod))

delete: ## delete your own jobs and pods of this project, after confirmation (yes=1 skips it)
	@$(LAUNCH) delete --kind all $(if $(call TRUE,$(yes)),--yes)

delete_job: ## delete your own jobs of this project, after confirmation
	@$(LAUNCH) delete --kind job $(if $(call TRUE,$(yes)),--yes)

delete_pod: ## delete your own pods of this project, after confirmation
	@$(LAUNCH) delete --kind pod $(if $(call TRUE,$(yes)),--yes)

clean_jobs: ## delete your failed jobs of this project, after confirmation
	@$(LAUNCH) clean-jobs $(if $(call TRUE,$(yes)),--yes)

S3ARGS = $(call q,$(file)) $(if $(call TRUE,$(overwrite)),--overwrite) $(if $(local_path),--local-path $(call q,$(local_path)))

upload: ## upload file=PATH (a folder ends with /, quote '*' patterns) to the bucket
	@$(S3) upload $(S3ARGS)

download: ## download file=PATH from the bucket
	@$(S3) download $(S3ARGS)

remove: ## remove file=PATH from the bucket, after confirmation (yes=1 skips it)
	@$(S3) remove $(S3ARGS) $(if $(call TRUE,$(yes)),--yes)

list: ## list bucket objects under file=PATH
	@$(S3) list $(S3ARGS)

find: ## find bucket objects matching file='PATTERN'
	@$(S3) find $(S3ARGS)

interactive: ## list local and bucket files matching file='PATTERN', then choose an action
	@$(S3) interactive $(S3ARGS)
