//
// Evaluation branch: one CAUSALGED_CROSSVALIDATE task per held-out gene fold (fold in the meta
// map, so a cluster runs the folds in parallel), gathered into one CAUSALGED_EVALUATE per sample.
// A failed fold stops the run (its task name says which sample and fold); with
// allow_failed_folds its task is ignored, the sample is evaluated on the folds that finished,
// and the missing folds are emitted (and logged) per sample.
//
include { CAUSALGED_CROSSVALIDATE } from '../../../modules/local/crossval'
include { CAUSALGED_EVALUATE      } from '../../../modules/local/evaluate'

workflow EVALUATION {
    take:
    ch_h5ad            // channel: [ val(meta), path(sc_hvg), path(st_hvg) ]
    ch_split           // channel: [ val(meta), path(split_json) ]
    allow_failed_folds // boolean: evaluate the folds that finished when some failed

    main:
    ch_inputs = ch_h5ad.join(ch_split, failOnMismatch: true)

    // The split written by CAUSALGED_SELECT_HVG is the truth for the number of folds.
    ch_folds = ch_inputs.flatMap { meta, sc, st, split ->
        def n_folds = readFoldCount(split)
        (0..<n_folds).collect { fold -> [meta + [fold: fold, n_folds: n_folds], sc, st, split] }
    }
    CAUSALGED_CROSSVALIDATE(ch_folds)

    // groupKey releases a sample as soon as its last fold finishes, not at the end of the run;
    // a sample short of a failed (ignored) fold is released when the cross-validation ends.
    ch_gathered = CAUSALGED_CROSSVALIDATE.out.predictions
        .map { meta, predictions -> [groupKey(sampleMeta(meta), meta.n_folds), meta.fold, predictions] }
        .groupTuple(remainder: allow_failed_folds)
        .map { key, folds, predictions ->
            [key.getGroupTarget(), (0..<key.getGroupSize()) - folds, predictions.sort { f -> f.name }]
        }

    ch_missing = ch_gathered
        .filter { _meta, missing, _predictions -> missing }
        .map { meta, missing, _predictions ->
            log.warn("${meta.id}: cross-validation fold(s) ${missing.join(', ')} failed and were left out (--allow_failed_folds); its scores and trust cover the other folds' genes only")
            [meta, missing]
        }

    CAUSALGED_EVALUATE(
        ch_inputs.join(ch_gathered.map { meta, _missing, predictions -> [meta, predictions] }, failOnMismatch: true)
    )

    emit:
    predictions   = CAUSALGED_CROSSVALIDATE.out.predictions                               // channel: [ val(meta + fold), path(fold_predictions) ]
    metrics       = CAUSALGED_EVALUATE.out.metrics                                        // channel: [ val(meta), path(metrics_csv) ]
    heldout       = CAUSALGED_EVALUATE.out.predictions                                    // channel: [ val(meta), path(heldout_h5ad) ]
    trust         = CAUSALGED_EVALUATE.out.trust                                          // channel: [ val(meta), path(gene_trust_csv) ]
    missing_folds = ch_missing                                                            // channel: [ val(meta), val(missing fold numbers) ]
    mqc           = CAUSALGED_EVALUATE.out.mqc.mix(CAUSALGED_EVALUATE.out.figures)        // channel: path(*_mqc.*)
    versions      = CAUSALGED_CROSSVALIDATE.out.versions.mix(CAUSALGED_EVALUATE.out.versions) // channel: path(versions.yml)
}

// Number of gene folds recorded in a split JSON.
def readFoldCount(split) {
    def record = new groovy.json.JsonSlurper().parseText(split.text)
    return record.n_folds as Integer
}

// The sample's meta map without the per-fold keys, so folds of one sample group together.
def sampleMeta(meta) {
    return meta.findAll { key, _value -> !(key in ['fold', 'n_folds']) }
}
