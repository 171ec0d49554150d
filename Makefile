# Kube Toolbox: the user's verbs. In your project root: ln -s src/toolbox/Makefile .   Then `make` lists the targets.
#
# Arguments: only='model=a dataset=d lr=0.1'  set='lr=0.1,0.01 model.m.gpu_count=2'  overwrite=true  yes=1
#            pod=NAME  file=PATH  keep_going=false  format=table|csv|json|markdown  sort=COLUMN  best=METRIC:min
#            group=HPARAM  metric=METRIC  name=JOB  follow=1  tail=N  node=K  json=1  smoke=1  index=N  port=N
#            local_path=DIR  extras=NAMES  interval=SECONDS  delete=1  stage=NAME  wait=1
# PYTHON     the interpreter that runs the toolbox (default: python3, the first on PATH). It needs the packages
#            `make setup` installs, so use the project's environment: activate it, or set PYTHON=.venv/bin/python
#            on the command line or once in project.mk.
# .env       exported to every recipe, read as launch.py reads it (python-dotenv, once `make setup` has installed
#            it; `$` stays literal). .env wins over the shell environment and over VAR=value on the command line,
#            as it does in local runs. PYTHON, make's own variables and the arguments above are never taken from it.
# project.mk your own targets, included at the end (a `## text` comment after a target lists it in `make help`);
#            it may use $(PYTHON), $(KT_TOOLBOX) and $(KT_LAUNCH).
# Exit status: 0 when everything succeeded. When a toolbox command fails, make itself exits 2 and names the
#            command's own status as "Error N" (1 failure, 2 bad input, 130/143 interrupted); a usage error of
#            a target (make logs without name=) is one line and exit status 2.
# The toolbox's folder, found through the Makefile link (a path with spaces is fine: it is quoted where used).
ifeq ($(word 2,$(CURDIR) $(lastword $(MAKEFILE_LIST))),$(lastword $(MAKEFILE_LIST)))
KT_TOOLBOX := $(patsubst %/,%,$(dir $(realpath $(lastword $(MAKEFILE_LIST)))))
else
KT_TOOLBOX := $(shell cd "$$(dirname "$$(readlink -f '$(subst ','\'',$(lastword $(MAKEFILE_LIST)))')")" && pwd -P)
endif
PYTHON ?= python3
KT_LAUNCH = $(PYTHON) '$(KT_TOOLBOX)/launch.py'
KT_S3 = $(PYTHON) '$(KT_TOOLBOX)/s3utils.py'
# Arguments reach the toolbox literally: read with $(value NAME) (make expands nothing in them: no $1, $(...),
# $(shell ...)) and quoted for the shell; true/false arguments go as given, and the toolbox says what it expects.
KT_Q = '$(subst ','\'',$(value $(1)))'
KT_OPT = $(if $(value $(1)),$(2)=$(call KT_Q,$(1)))
KT_BOOL = $(call KT_OPT,$(1),$(2))
KT_ONLY = $(call KT_OPT,only,--only)
KT_SET = $(call KT_OPT,set,--set)
KT_ARGS := only set overwrite yes pod file name follow tail json smoke index port local_path keep_going extras \
	format sort best group metric interval delete stage wait checkpoints node
# Command-line variables are exported to recipes, and exporting expands them: not these (they are data).
unexport $(KT_ARGS)
KT_STAGE = $(call KT_OPT,stage,--stage)
.DEFAULT_GOAL := help
.PHONY: help setup local local-dryrun local-first runs print-config results report job status logs forward smoke dryrun pod \
	pod-dryrun copy delete delete_job delete_pod clean_jobs upload up download down remove rm list ls find fd \
	interactive monitor mn

ifeq ($(shell pwd -P),$(KT_TOOLBOX))
ifneq ($(filter-out help,$(MAKECMDGOALS)),)
$(error this is the toolbox checkout itself; run make from your project root after 'ln -s src/toolbox/Makefile .')
endif
endif

KT_TARGETS = awk -F':.*\#\# ' '/^[a-zA-Z_-]+:.*\#\# /{printf "  make %-14s %s\n", $$1, $$2}'
help: ## list the targets
	@echo "Kube Toolbox targets (run from the project root):"
	@$(KT_TARGETS) '$(KT_TOOLBOX)/Makefile'
	@echo "Grid targets take only='model=a lr=0.1' (which cells) and set='lr=0.1,0.01 model.NAME.gpu_count=2' (override"
	@echo "values for this command; the toolbox's docs/results.md)."
	@if [ -f project.mk ]; then echo "Project targets (project.mk):"; $(KT_TARGETS) project.mk; fi

setup: ## install the toolbox's packages into the project's Python environment; .env, build/ into .gitignore
	@$(PYTHON) '$(KT_TOOLBOX)/kube/bootstrap.py' install --root . $(call KT_OPT,extras,--extras)

local: ## run every selected combination here, in sequence (keep_going=false stops at the first failure)
	@$(KT_LAUNCH) local $(KT_ONLY) $(KT_SET) $(KT_STAGE) $(call KT_BOOL,keep_going,--keep-going)

local-dryrun: ## print the local commands, run nothing
	@$(KT_LAUNCH) local --dry-run $(KT_ONLY) $(KT_SET) $(KT_STAGE)

local-first: ## run only the first selected combination here
	@$(KT_LAUNCH) local --first $(KT_ONLY) $(KT_SET)

runs: ## list the selected combinations with their job names
	@$(KT_LAUNCH) runs $(KT_ONLY) $(KT_SET)

print-config: ## show the merged settings of one combination (index=N)
	@$(KT_LAUNCH) print-config $(KT_ONLY) $(KT_SET) $(call KT_OPT,index,--index)

results: ## the metrics of the selected cells as one table (format=csv|json|markdown sort=COL best=METRIC:min group=HPARAM)
	@$(KT_LAUNCH) results $(KT_ONLY) $(KT_SET) $(call KT_OPT,format,--format) \
		$(call KT_OPT,sort,--sort) $(call KT_OPT,best,--best) \
		$(call KT_OPT,group,--group)

report: ## write build/report.html: states, a grid per model x dataset (metric=NAME colours it), the results
	@$(KT_LAUNCH) report $(KT_ONLY) $(KT_SET) $(call KT_OPT,metric,--metric)

job: ## one Kubernetes Job per combination (overwrite=true replaces running ones; only=failed|missing; smoke=1; wait=1)
	@$(KT_LAUNCH) job $(KT_ONLY) $(KT_SET) $(call KT_BOOL,overwrite,--overwrite) $(call KT_BOOL,smoke,--smoke) \
		$(KT_STAGE) $(call KT_BOOL,wait,--wait)

status: ## state, age, node, GPU and reason of every cell (json=1 for scripts, checkpoints=1 adds the newest)
	@$(KT_LAUNCH) status $(KT_ONLY) $(KT_SET) $(call KT_BOOL,json,--json) $(call KT_BOOL,checkpoints,--checkpoints)

KT_USAGE_LOGS := usage: make logs name=JOB (a job name; or name='model=a dataset=d'; follow=1 streams; tail=N; node=K)
logs: ## logs of one cell: name=JOB or name='model=a dataset=d' (follow=1 streams, tail=N, stage=NAME, node=K)
	@$(if $(value name),,$(error $(KT_USAGE_LOGS)))
	@$(KT_LAUNCH) logs $(call KT_OPT,name,--name) $(call KT_BOOL,follow,--follow) \
		$(call KT_OPT,tail,--tail) $(KT_STAGE) $(call KT_OPT,node,--node)

KT_USAGE_FORWARD := usage: make forward name=JOB (a job name or name='model=a dataset=d'; port=N for the local port)
forward: ## port-forward to the server: sidecar of one cell: name=JOB (port=N, local port)
	@$(if $(value name),,$(error $(KT_USAGE_FORWARD)))
	@$(KT_LAUNCH) forward $(call KT_OPT,name,--name) $(call KT_OPT,port,--port)

smoke: ## run the first combination as a Job with the smoke: overrides, wait, report
	@$(KT_LAUNCH) smoke $(KT_ONLY) $(KT_SET)

dryrun: ## print every Job manifest, contact no cluster (also written to build/jobs.yaml)
	@$(KT_LAUNCH) dryrun $(KT_ONLY) $(KT_SET) $(KT_STAGE)

pod: ## start the interactive pod (pod=NAME to name it)
	@$(KT_LAUNCH) pod $(call KT_OPT,pod,--name)

pod-dryrun: ## print the interactive pod manifest, contact no cluster
	@$(KT_LAUNCH) pod --dry-run $(call KT_OPT,pod,--name)

KT_USAGE_COPY := usage: make copy pod=NAME (the running pod to copy the file: section into)
copy: ## copy the file: section into a running pod (pod=NAME)
	@$(if $(value pod),,$(error $(KT_USAGE_COPY)))
	@$(KT_LAUNCH) copy $(call KT_OPT,pod,--pod)

delete: ## delete your own jobs and pods of this project, after confirmation (yes=1 skips it)
	@$(KT_LAUNCH) delete --kind all $(call KT_BOOL,yes,--yes)

delete_job: ## delete your own jobs of this project, after confirmation
	@$(KT_LAUNCH) delete --kind job $(call KT_BOOL,yes,--yes)

delete_pod: ## delete your own pods of this project, after confirmation
	@$(KT_LAUNCH) delete --kind pod $(call KT_BOOL,yes,--yes)

clean_jobs: ## delete your failed jobs of this project, after confirmation
	@$(KT_LAUNCH) clean-jobs $(call KT_BOOL,yes,--yes)

KT_S3ARGS = $(call KT_BOOL,overwrite,--overwrite) $(call KT_OPT,local_path,--local-path) -- $(call KT_Q,file)

upload: ## upload file=PATH (a folder ends with /, quote '*' patterns) to the bucket
	@$(KT_S3) upload $(KT_S3ARGS)

up: upload ## short for upload

download: ## download file=PATH from the bucket
	@$(KT_S3) download $(KT_S3ARGS)

down: download ## short for download

remove: ## remove file=PATH from the bucket, after confirmation (yes=1 skips it)
	@$(KT_S3) remove $(call KT_BOOL,yes,--yes) $(KT_S3ARGS)

rm: remove ## short for remove

list: ## list bucket objects under file=PATH
	@$(KT_S3) list $(KT_S3ARGS)

ls: list ## short for list

find: ## find bucket objects matching file='PATTERN'
	@$(KT_S3) find $(KT_S3ARGS)

fd: find ## short for find

interactive: ## list local and bucket files matching file='PATTERN', then choose an action
	@$(KT_S3) interactive $(KT_S3ARGS)

monitor: ## upload file=DIR's complete files every interval=SECONDS (60) until Ctrl-C; delete=1 mirrors deletes
	@$(KT_S3) monitor $(call KT_OPT,interval,--interval) $(call KT_BOOL,delete,--delete) \
		$(call KT_OPT,local_path,--local-path) -- $(call KT_Q,file)

mn: monitor ## short for monitor

# The public toolbox's removed targets say where they went (a project.mk rule of that name still wins).
KT_REMOVED := shell tmux debug lint clean create_environment test_environment
.DEFAULT:
	@$(if $(filter $@,$(KT_REMOVED)),echo "make $@: the public toolbox's target is not part of Kube Toolbox; add \
		it to project.mk if you use it (docs/make.md)" >&2; exit 2,$(if $(findstring .,$@)$(findstring /,$@),:,\
		echo "make $@: no such target (\`make help\` lists them)" >&2; exit 2))

# The project's own targets and settings (PYTHON among them), then .env, read with the final PYTHON.
-include project.mk

ifneq ($(wildcard .env),)
KT_UNIT := $(shell printf '\037')
define KT_NEWLINE


endef
$(eval $(subst $(KT_UNIT),$(KT_NEWLINE),$(shell $(PYTHON) '$(KT_TOOLBOX)/kube/bootstrap.py' make-env .env --skip '$(KT_ARGS)')))
endif
