//
// Evaluation branch: one CROSSVALIDATE task per held-out gene fold (fold in the meta map, so a
// cluster runs the folds in parallel), gathered into one EVALUATE per sample.
//
include { CROSSVALIDATE } from '../../../modules/local/crossval'
include { EVALUATE      } from '../../../modules/local/evaluate'

workflow EVALUATION {
    take:
    ch_h5ad  // channel: [ val(meta), path(sc_hvg), path(st_hvg) ]
    ch_split // channel: [ val(meta), path(split_json) ]

    main:
    ch_inputs = ch_h5ad.join(ch_split, failOnMismatch: true)

    // The split written by SELECT_HVG is the truth for the number of folds.
    ch_folds = ch_inputs.flatMap { meta, sc, st, split ->
        def n_folds = readFoldCount(split)
        (0..<n_folds).collect { fold -> [meta + [fold: fold, n_folds: n_folds], sc, st, split] }
    }
    CROSSVALIDATE(ch_folds)

    // groupKey releases a sample as soon as its last fold finishes, not at the end of the run.
    ch_gathered = CROSSVALIDATE.out.predictions
        .map { meta, predictions -> [groupKey(sampleMeta(meta), meta.n_folds), predictions] }
        .groupTuple()
        .map { key, predictions -> [key.getGroupTarget(), predictions.sort { f -> f.name }] }

    EVALUATE(ch_inputs.join(ch_gathered, failOnMismatch: true))

    emit:
    predictions = CROSSVALIDATE.out.predictions                      // channel: [ val(meta + fold), path(fold_predictions) ]
    metrics     = EVALUATE.out.metrics                               // channel: [ val(meta), path(metrics_csv) ]
    heldout     = EVALUATE.out.predictions                           // channel: [ val(meta), path(heldout_h5ad) ]
    trust       = EVALUATE.out.trust                                 // channel: [ val(meta), path(gene_trust_csv) ]
    mqc         = EVALUATE.out.mqc.mix(EVALUATE.out.figures)         // channel: path(*_mqc.*)
    versions    = CROSSVALIDATE.out.versions.mix(EVALUATE.out.versions) // channel: path(versions.yml)
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
