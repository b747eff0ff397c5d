//
// CAUSALGED: preprocess every sample, then the production branch (train -> impute) and, unless
// skipped, the evaluation branch (per-fold cross-validation -> evaluate), optionally the causal
// analysis of the normalized panel (CAUSALGED_CAUSALITY) and the ablation of the causalged model on
// the raw pair (CAUSALGED_ABLATE), then one MultiQC report.
//
include { PREPROCESS } from '../subworkflows/local/preprocess'
include { PRODUCTION } from '../subworkflows/local/production'
include { EVALUATION } from '../subworkflows/local/evaluation'
include { MULTIQC    } from '../modules/local/multiqc'
include { CAUSALGED_CAUSALITY } from '../modules/local/causality'
include { CAUSALGED_ABLATE    } from '../modules/local/ablate'

workflow CAUSALGED {
    take:
    ch_samples         // channel: [ val(meta), path(sc), path(st), path(genes) or [] ]
    ch_multiqc_config  // channel: path(multiqc_config.yml)
    ch_run_mqc         // channel: path(*_mqc.*) run-level MultiQC content (parameter summary)
    run_evaluation     // boolean: run the held-out gene cross-validation branch
    allow_failed_folds // boolean: evaluate the folds that finished when some failed
    run_multiqc        // boolean: render the MultiQC report
    pipeline_info_dir  // string: where the collected software versions and missing folds are stored
    run_causality      // boolean: run the causal analysis after normalization
    run_ablation       // boolean: run the paper's ablation grid of the causalged model on each sample

    main:
    PREPROCESS(ch_samples)

    ch_eval_versions = channel.empty()
    ch_eval_mqc = channel.empty()
    ch_metrics = channel.empty()
    // Without evaluation the imputed genes carry no expected accuracy: an empty trust input.
    ch_trust = PREPROCESS.out.split.map { meta, _split -> [meta, []] }
    if (run_evaluation) {
        EVALUATION(PREPROCESS.out.h5ad, PREPROCESS.out.split, allow_failed_folds)
        ch_eval_versions = EVALUATION.out.versions
        // Which folds each sample lacks: a report section and pipeline_info/causalged_missing_folds_mqc.tsv
        def ch_missing_folds = EVALUATION.out.missing_folds
            .map { meta, missing -> "${meta.id}\t${missing.join(',')}" }
            .collectFile(name: 'causalged_missing_folds_mqc.tsv', storeDir: pipeline_info_dir, seed: missingFoldsHeader(), newLine: true, sort: true)
        ch_eval_mqc = EVALUATION.out.mqc.mix(ch_missing_folds)
        ch_metrics = EVALUATION.out.metrics
        ch_trust = EVALUATION.out.trust
    }
    PRODUCTION(PREPROCESS.out.h5ad, PREPROCESS.out.split, ch_trust)

    ch_causality_versions = channel.empty()
    ch_causality_mqc = channel.empty()
    if (run_causality) {
        CAUSALGED_CAUSALITY(PREPROCESS.out.normalized)
        ch_causality_versions = CAUSALGED_CAUSALITY.out.versions
        ch_causality_mqc = CAUSALGED_CAUSALITY.out.mqc.mix(CAUSALGED_CAUSALITY.out.figures.flatten())
    }

    ch_ablation_versions = channel.empty()
    ch_ablation_mqc = channel.empty()
    if (run_ablation) {
        CAUSALGED_ABLATE(ch_samples.map { meta, sc, st, _genes -> [meta, sc, st] })
        ch_ablation_versions = CAUSALGED_ABLATE.out.versions
        ch_ablation_mqc = CAUSALGED_ABLATE.out.mqc.flatten()
    }

    // One versions file for the run: identical per-task records collapse to one entry per process.
    ch_versions_yml = PREPROCESS.out.versions
        .mix(PRODUCTION.out.versions, ch_eval_versions, ch_causality_versions, ch_ablation_versions)
        .map { versions -> versions.text.trim() }
        .mix(channel.of(workflowVersions()))
        .unique()
        .collectFile(name: 'causalged_software_mqc_versions.yml', storeDir: pipeline_info_dir, newLine: true, sort: true)

    ch_multiqc_report = channel.empty()
    if (run_multiqc) {
        ch_multiqc_files = PREPROCESS.out.mqc
            .mix(PRODUCTION.out.mqc, ch_eval_mqc, ch_causality_mqc, ch_ablation_mqc, ch_run_mqc, ch_versions_yml)
            .collect()
            .map { files -> [[id: 'causalged'], files] }
        MULTIQC(ch_multiqc_files, ch_multiqc_config)
        ch_multiqc_report = MULTIQC.out.report
    }

    emit:
    imputed        = PRODUCTION.out.imputed // channel: [ val(meta), path(imputed_h5ad) ]
    model          = PRODUCTION.out.model   // channel: [ val(meta), path(model_dir) ]
    metrics        = ch_metrics             // channel: [ val(meta), path(metrics_csv) ]
    multiqc_report = ch_multiqc_report      // channel: [ val(meta), path(multiqc_report.html) ]
    versions       = ch_versions_yml        // channel: path(causalged_software_mqc_versions.yml)
}

// Header of the MultiQC table of folds left out by --allow_failed_folds.
def missingFoldsHeader() {
    return [
        "# id: 'causalged_missing_folds'",
        "# section_name: 'Missing cross-validation folds'",
        "# description: 'Folds that failed and were left out (--allow_failed_folds): the scores and trust of these samples cover the other folds only.'",
        "# plot_type: 'table'",
        "Sample\tMissing folds",
    ].join('\n')
}

// The run-level entry of the versions file: the engine and the pipeline release.
def workflowVersions() {
    return """\
        "Workflow":
            Nextflow: "${workflow.nextflow.version}"
            causalged: "${workflow.manifest.version}"
        """.stripIndent().trim()
}
