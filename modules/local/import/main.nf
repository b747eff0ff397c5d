process CAUSALGED_IMPORT {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    // sc, st: a file (.h5ad, .h5, .loom) or a folder (Cell Ranger matrix, instrument output, SpatialData .zarr)
    tuple val(meta), path(sc), path(st)

    output:
    tuple val(meta), path("${prefix}.sc.h5ad"), path("${prefix}.st.h5ad"), emit: h5ad
    tuple val(meta), path("${prefix}.import.json"), emit: json
    path "${prefix}.import_mqc.tsv", emit: mqc
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    // the samplesheet's platform only confirms the layout the import recognises from the files
    def platform_arg = meta.platform ? "--platform ${meta.platform}" : ''
    """
    causalged-import \\
        --sample ${prefix} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${platform_arg} \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.sc.h5ad ${prefix}.st.h5ad ${prefix}.import.json ${prefix}.import_mqc.tsv
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
